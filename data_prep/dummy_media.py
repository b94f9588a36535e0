"""Writes small media files for tests: the builders' dummy data.

Media files are never committed; tests call these functions to write them
into temporary folders, every release with `generated.MARKER` at its root (no
build of it passes for the real dataset). Run as a script to look at them:

  python -m data_prep.dummy_media video_folder /tmp/dummy
  (or esc10, esc50, dcase2013_scenes, kinetics_sounds, flickr_soundnet,
  urbansound8k, urbansound8k_full: the release's size, for timing)

Each video's frame i is a flat grey of level `frame_level(i)` (so a test can
tell which frame it got back) and its audio is a sine (a different pitch per
channel), optionally with a beep at a known time for alignment checks.
"""

import fractions
import os
import sys

import av
import numpy as np

from data_prep import generated

# container -> (video codec, pixel format, audio codec, audio sample format)
FORMATS = {
    "mp4": ("libx264", "yuv420p", "aac", "fltp"),
    "webm": ("libvpx", "yuv420p", "vorbis", "fltp"),
    "avi": ("mpeg4", "yuv420p", "libmp3lame", "fltp"),
    "mkv": ("libx264", "yuv420p", "flac", "s16"),
}
AUDIO_FORMATS = {  # extension -> (container format, codec, sample format)
    "wav": ("wav", "pcm_s16le", "s16"),
    "flac": ("flac", "flac", "s16"),
    "ogg": ("ogg", "vorbis", "fltp"),
    "mp3": ("mp3", "libmp3lame", "fltp"),
    "m4a": ("mp4", "aac", "fltp"),
}
_CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def frame_level(index: int) -> int:
  """The grey level of frame `index` (distinct for the first 56 frames)."""
  return 16 + (index * 4) % 224


def tone(seconds: float, sample_rate: int, channels: int = 1,
         frequencies=(440.0, 660.0, 880.0, 1100.0, 1320.0, 1540.0),
         amplitude: float = 0.5, beep_at: float | None = None) -> np.ndarray:
  """float32 [channels, n]: channel c a sine at frequencies[c].

  With beep_at, the sound is silent except for a 0.1 s 1 kHz beep starting
  then (for alignment tests).
  """
  t = np.arange(int(round(seconds * sample_rate))) / sample_rate
  if beep_at is not None:
    on = (t >= beep_at) & (t < beep_at + 0.1)
    wave = np.where(on, amplitude * np.sin(2 * np.pi * 1000.0 * t), 0.0)
    return np.repeat(wave[None], channels, 0).astype(np.float32)
  return np.stack([amplitude * np.sin(2 * np.pi * frequencies[c] * t)
                   for c in range(channels)]).astype(np.float32)


def _codec_options(stream):
  if stream.codec_context.name == "vorbis":  # FFmpeg's own Vorbis encoder
    stream.codec_context.options = {"strict": "experimental"}


def _audio_layout(codec: str, channels: int) -> tuple[int, str]:
  """(channels to write, layout): FFmpeg's Vorbis encoder writes stereo only,
  so mono Vorbis is written as two identical channels."""
  if codec == "vorbis" and channels == 1:
    return 2, "stereo"
  return channels, _CHANNEL_LAYOUTS[channels]


# wav codec -> the sample format PyAV encodes it from (pcm_s24le takes s32).
WAV_CODECS = {"pcm_u8": "u8", "pcm_s16le": "s16", "pcm_s24le": "s32",
              "pcm_s32le": "s32", "pcm_f32le": "flt"}


def _interleaved(block: np.ndarray, sample_format: str) -> np.ndarray:
  """float32 [channels, n] -> [1, n * channels] of the format (integer
  formats clipped to [-1, 1]: a resampled full-scale sound overshoots)."""
  samples = block.T if sample_format == "flt" else np.clip(block.T, -1, 1)
  if sample_format == "u8":
    return (np.round(samples * 127) + 128).astype(np.uint8).reshape(1, -1)
  if sample_format == "s16":
    return np.round(samples * 32767).astype(np.int16).reshape(1, -1)
  if sample_format == "s32":
    return np.round(samples * 2147483647.0).astype(np.int32).reshape(1, -1)
  return np.ascontiguousarray(samples, np.float32).reshape(1, -1)  # flt


def _encode_audio(container, stream, samples: np.ndarray, sample_rate: int,
                  sample_format: str, layout: str):
  """Muxes float32 [channels, n] samples through `stream`."""
  frame_size = stream.codec_context.frame_size or 1024
  for start in range(0, samples.shape[1], frame_size):
    block = samples[:, start:start + frame_size]
    if sample_format in ("u8", "s16", "s32", "flt"):  # interleaved
      data = _interleaved(block, sample_format)
    else:  # planar float
      data = np.ascontiguousarray(block, np.float32)
    frame = av.AudioFrame.from_ndarray(data, format=sample_format,
                                       layout=layout)
    frame.sample_rate = sample_rate
    frame.pts = start
    frame.time_base = fractions.Fraction(1, sample_rate)
    container.mux(stream.encode(frame))
  container.mux(stream.encode(None))


def write_video(path: str | os.PathLike, seconds: float = 2.0,
                fps: float = 25.0, width: int = 160, height: int = 120,
                sample_rate: int = 44100, channels: int = 1,
                audio: bool = True, video: bool = True,
                frame_times: list[float] | None = None,
                silent: bool = False, beep_at: float | None = None,
                flash_at: float | None = None,
                container_format: str | None = None,
                keyframe_interval: int | None = None,
                b_frames: int = 0) -> str:
  """Writes a small video whose frames and sound tests can recognise.

  Args:
    path: output file; its extension picks the codecs (see FORMATS).
    seconds: duration of both streams.
    fps: frame rate (ignored when frame_times is given).
    width / height: frame size (odd sizes use 4:4:4 H.264).
    sample_rate / channels: of the audio stream.
    audio / video: whether to write each stream.
    frame_times: explicit presentation times, for variable frame rate.
    silent: digital silence instead of the tones.
    beep_at: silent but for a 0.1 s beep starting at this time.
    flash_at: frames at or after this time (until +0.1 s) are white.
    container_format: FFmpeg muxer (default: from the extension).
    keyframe_interval: frames between keyframes (default: the codec's).
    b_frames: H.264 only: B-frames between references (non-reference, in a
      fixed pattern), so that decoders reorder and may drop frames.

  Returns:
    The path written.
  """
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lstrip(".").lower()
  video_codec, pix_fmt, audio_codec, sample_format = FORMATS[ext]
  odd = width % 2 or height % 2
  if odd:
    video_codec, pix_fmt = "libx264", "yuv444p"
  if frame_times is None:
    frame_times = list(np.arange(int(round(seconds * fps))) / fps)
  time_base = fractions.Fraction(1, 1000) if ext != "avi" else (
      fractions.Fraction(1, int(round(fps))))
  with av.open(path, "w", format=container_format) as container:
    if video:
      stream = container.add_stream(video_codec,
                                    rate=fractions.Fraction(fps).limit_denominator(1000))
      stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
      stream.codec_context.time_base = time_base
      if video_codec == "libx264":
        stream.options = {"preset": "ultrafast", "crf": "18", "bf": "0"}
        if b_frames:
          stream.options = {
              "preset": "superfast", "crf": "18",
              "x264-params": f"bframes={b_frames}:b-adapt=0:b-pyramid=none"}
      if keyframe_interval:
        stream.codec_context.gop_size = keyframe_interval
    if audio:
      written_channels, layout = _audio_layout(audio_codec, channels)
      sound = container.add_stream(audio_codec, rate=sample_rate,
                                   layout=layout)
      _codec_options(sound)
    if video:
      for i, t in enumerate(frame_times):
        level = frame_level(i)
        if flash_at is not None and flash_at <= t < flash_at + 0.1:
          level = 255
        image = np.full([height, width, 3], level, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = int(round(t / time_base))
        frame.time_base = time_base
        container.mux(stream.encode(frame))
      container.mux(stream.encode(None))
    if audio:
      samples = tone(seconds, sample_rate, channels, beep_at=beep_at)
      samples = np.resize(samples, (written_channels, samples.shape[1]))
      if silent:
        samples[:] = 0
      _encode_audio(container, sound, samples, sample_rate, sample_format,
                    layout)
  return path


def write_audio(path: str | os.PathLike, seconds: float = 1.0,
                sample_rate: int = 44100, channels: int = 1,
                beep_at: float | None = None,
                frequencies=(440.0, 660.0, 880.0, 1100.0, 1320.0,
                             1540.0), codec: str | None = None) -> str:
  """Writes a tone (see `tone`) as wav / flac / ogg / mp3 / m4a; `codec`
  picks a wav sample format (a key of WAV_CODECS, default 16-bit)."""
  samples = tone(seconds, sample_rate, channels, frequencies,
                 beep_at=beep_at)
  return write_samples(path, samples, sample_rate, codec)


def write_samples(path: str | os.PathLike, samples: np.ndarray,
                  sample_rate: int, codec: str | None = None) -> str:
  """Writes float32 [channels, n] samples in [-1, 1]; the extension picks
  the container and codec (AUDIO_FORMATS), `codec` a wav sample format."""
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lstrip(".").lower()
  container_format, default_codec, sample_format = AUDIO_FORMATS[ext]
  if codec is not None:
    if ext != "wav" or codec not in WAV_CODECS:
      raise ValueError(f"codec={codec!r} for {path}: expected a .wav path "
                       f"and one of {sorted(WAV_CODECS)}")
    sample_format = WAV_CODECS[codec]
  codec = codec or default_codec
  with av.open(path, "w", format=container_format) as container:
    written_channels, layout = _audio_layout(codec, samples.shape[0])
    stream = container.add_stream(codec, rate=sample_rate, layout=layout)
    _codec_options(stream)
    samples = np.resize(samples, (written_channels, samples.shape[1]))
    _encode_audio(container, stream, samples, sample_rate, sample_format,
                  layout)
  return path


def truncate(source: str, target: str, fraction: float) -> str:
  """Copies the first `fraction` of a file (a download cut short)."""
  with open(source, "rb") as f:
    data = f.read()
  return _write_bytes(target, data[:int(len(data) * fraction)])


def _write_bytes(path: str, data: bytes) -> str:
  with open(path, "wb") as f:
    f.write(data)
  return path


# What the video_folder dummy data holds, and what must become of each file.
# path -> None (built) or a fragment of the skip reason.
VIDEO_FOLDER_EXPECTED = {
    "dogs/bark_mp4.mp4": None,
    "dogs/stereo_44k.webm": None,
    "dogs/mpeg4_mp3.avi": None,
    "dogs/portrait.mp4": None,
    "drums/odd_size.mp4": None,
    "drums/variable_rate.mp4": None,
    "drums/six_channels.mp4": None,
    "drums/flac_audio.mkv": None,
    "drums/long_12s.mp4": None,
    "root_level.mp4": None,
    # A streamable container cut short: its decodable first ~1.5 s are built.
    "drums/interrupted.webm": None,
    "dogs/no_audio.mp4": "no audio stream",
    "dogs/audio_only.mp4": "no video stream",
    "dogs/empty.mp4": "empty file",
    "drums/random_bytes.mp4": "not a readable media file",
    "drums/truncated.mp4": "not a readable media file",
    "drums/short.mp4": "too short",
    "drums/silent.mp4": "silent audio",
    "dogs/README.txt": "not a video file",
    "notes.csv": "not a video file",
}


@generated.writes_marker
def write_video_folder(root: str | os.PathLike) -> dict:
  """The video_folder dummy data: good videos of every kind and bad input.

  Returns:
    VIDEO_FOLDER_EXPECTED (path -> None if built, else a reason fragment).
  """
  root = os.fspath(root)
  for sub in ("dogs", "drums"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
  p = lambda name: os.path.join(root, name)  # pylint: disable=unnecessary-lambda-assignment
  write_video(p("dogs/bark_mp4.mp4"), seconds=2.0)
  write_video(p("dogs/stereo_44k.webm"), seconds=2.0, channels=2)
  write_video(p("dogs/mpeg4_mp3.avi"), seconds=2.0, channels=2)
  write_video(p("dogs/portrait.mp4"), seconds=1.5, width=90, height=160)
  write_video(p("drums/odd_size.mp4"), seconds=1.5, width=161, height=97,
              sample_rate=16000)
  write_video(p("drums/variable_rate.mp4"), seconds=2.0,
              frame_times=[0.0, 0.04, 0.08, 0.5, 0.55, 1.2, 1.21, 1.6, 1.95])
  write_video(p("drums/six_channels.mp4"), seconds=1.5, channels=6,
              sample_rate=48000)
  write_video(p("drums/flac_audio.mkv"), seconds=1.5, sample_rate=22050)
  write_video(p("drums/long_12s.mp4"), seconds=12.0, fps=5, width=64,
              height=48, sample_rate=8000)
  write_video(p("root_level.mp4"), seconds=1.5)
  write_video(p("dogs/no_audio.mp4"), seconds=1.5, audio=False)
  write_video(p("dogs/audio_only.mp4"), seconds=1.5, video=False)
  _write_bytes(p("dogs/empty.mp4"), b"")
  _write_bytes(p("drums/random_bytes.mp4"),
               np.random.default_rng(0).bytes(4096))
  truncate(write_video(p("drums/full.mp4"), seconds=2.0),
           p("drums/truncated.mp4"), 0.5)
  os.remove(p("drums/full.mp4"))
  truncate(write_video(p("drums/full.webm"), seconds=3.0),
           p("drums/interrupted.webm"), 0.6)
  os.remove(p("drums/full.webm"))
  write_video(p("drums/short.mp4"), seconds=0.8)
  write_video(p("drums/silent.mp4"), seconds=1.5, silent=True)
  _write_bytes(p("dogs/README.txt"), b"not a video\n")
  _write_bytes(p("notes.csv"), b"a,b\n1,2\n")
  return dict(VIDEO_FOLDER_EXPECTED)


ESC10_CLASSES = ("001 - Dog bark", "002 - Rain", "003 - Sea waves")


@generated.writes_marker
def write_esc10(root: str | os.PathLike) -> dict[str, int]:
  """ESC-10 layout: 3 classes x 5 folds x 2 clips, plus 2 bad files.

  Returns:
    Examples per split: {"fold1": 6, ..., "fold5": 6}.
  """
  root = os.fspath(root)
  for k, folder in enumerate(ESC10_CLASSES):
    os.makedirs(os.path.join(root, folder))
    for fold in range(1, 6):
      for take in "AB":
        write_audio(os.path.join(root, folder, f"{fold}-{100 + k}-{take}.ogg"),
                    seconds=0.5, frequencies=(300.0 * (k + 1),))
  _write_bytes(os.path.join(root, ESC10_CLASSES[1], "3-999-A.ogg"),
               b"OggS" + bytes(300))
  _write_bytes(os.path.join(root, ESC10_CLASSES[2], "notes.txt"), b"x\n")
  return {f"fold{k}": 6 for k in range(1, 6)}


ESC50_CATEGORIES = ("dog", "rooster", "pig")


@generated.writes_marker
def write_esc50(root: str | os.PathLike) -> dict[str, int]:
  """ESC-50 layout: 3 targets x 5 folds, a listed-but-missing file and an
  unlisted one.

  Returns:
    Examples per split: {"fold1": 3, ..., "fold5": 3}.
  """
  root = os.fspath(root)
  os.makedirs(os.path.join(root, "meta"))
  os.makedirs(os.path.join(root, "audio"))
  rows = ["filename,fold,target,category,esc10,src_file,take"]
  for fold in range(1, 6):
    for target, category in enumerate(ESC50_CATEGORIES):
      name = f"{fold}-{1000 + target}-A-{target}.wav"
      rows.append(f"{name},{fold},{target},{category},False,"
                  f"{1000 + target},A")
      write_audio(os.path.join(root, "audio", name), seconds=0.5,
                  frequencies=(300.0 * (target + 1),))
  rows.append("2-7777-A-1.wav,2,1,rooster,False,7777,A")  # never written
  write_audio(os.path.join(root, "audio", "9-unlisted-A-0.wav"), seconds=0.5)
  with open(os.path.join(root, "meta", "esc50.csv"), "w") as f:
    f.write("\n".join(rows) + "\n")
  return {f"fold{k}": 3 for k in range(1, 6)}


@generated.writes_marker
def write_dcase2013(root: str | os.PathLike) -> dict[str, int]:
  """DCASE 2013 scenes layout: 3 scenes, 2 train and 1 test clip each.

  Returns:
    Examples per split: {"train": 6, "test": 3}.
  """
  root = os.fspath(root)
  for folder, numbers in (("scenes_stereo", ("01", "07")),
                          ("scenes_stereo_testset", ("03",))):
    os.makedirs(os.path.join(root, folder))
    for k, scene in enumerate(("bus", "office", "park")):
      for number in numbers:
        write_audio(os.path.join(root, folder, f"{scene}{number}.wav"),
                    seconds=0.5, channels=2,
                    frequencies=(300.0 * (k + 1), 310.0 * (k + 1)))
  _write_bytes(os.path.join(root, "scenes_stereo", "readme.txt"), b"x\n")
  return {"train": 6, "test": 3}


US8K_CLASSES = ("air_conditioner", "car_horn", "children_playing")
# (codec, rate, channels) of the dummy clips in turn: every width and rate
# the release has.
US8K_FORMATS = (("pcm_u8", 8000, 1), ("pcm_s16le", 44100, 2),
                ("pcm_s24le", 96000, 1), ("pcm_s32le", 192000, 2),
                ("pcm_f32le", 22050, 1), ("pcm_s16le", 16000, 1),
                ("pcm_u8", 11025, 2), ("pcm_s24le", 48000, 2),
                ("pcm_f32le", 32000, 2), ("pcm_s32le", 8000, 1))
US8K_SECONDS = (0.4, 1.0, 1.5, 0.75)  # one clip in four shorter than 1 s
# What must become of the bad files: path -> a fragment of the skip reason.
US8K_SKIPS = {
    "audio/fold3/9999-1-0-0.wav": "not a readable media file",
    "audio/fold2/7777-2-0-0.wav": "listed in metadata/UrbanSound8K.csv but "
                                  "missing",
    "audio/fold5/8888-0-0-0.wav": "not listed in metadata/UrbanSound8K.csv",
    "audio/fold1/5555-0-0-0.wav": "metadata/UrbanSound8K.csv puts it in "
                                  "audio/fold4/",
    "audio/fold4/5555-0-0-0.wav": "listed in metadata/UrbanSound8K.csv but "
                                  "missing",
}


def us8k_frequency(class_id: int) -> float:
  return 300.0 * (class_id + 1)


@generated.writes_marker
def write_urbansound8k(root: str | os.PathLike) -> dict[str, int]:
  """UrbanSound8K layout: 10 folds x 2 clips in the formats of
  `US8K_FORMATS`, durations of `US8K_SECONDS`, and the bad files of
  `US8K_SKIPS`.

  Returns:
    Examples per split: {"fold1": 2, ..., "fold10": 2}.
  """
  root = os.fspath(root)
  os.makedirs(os.path.join(root, "metadata"))
  rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
  index = 0
  for fold in range(1, 11):
    os.makedirs(os.path.join(root, "audio", f"fold{fold}"))
    for j in range(2):
      class_id = (fold + j) % len(US8K_CLASSES)
      fsid = 100 * fold + j  # one recording per clip: no fsID in two folds
      codec, rate, channels = US8K_FORMATS[index % len(US8K_FORMATS)]
      seconds = US8K_SECONDS[index % len(US8K_SECONDS)]
      start = 0.5 * j
      name = f"{fsid}-{class_id}-0-{j}.wav"
      write_audio(os.path.join(root, "audio", f"fold{fold}", name),
                  seconds=seconds, sample_rate=rate, channels=channels,
                  frequencies=(us8k_frequency(class_id),) * channels,
                  codec=codec)
      rows.append(f"{name},{fsid},{start},{start + seconds},{1 + j},{fold},"
                  f"{class_id},{US8K_CLASSES[class_id]}")
      index += 1
  _write_bytes(os.path.join(root, "audio", "fold3", "9999-1-0-0.wav"),
               b"RIFF" + np.random.default_rng(0).bytes(2000))
  rows.append("9999-1-0-0.wav,9999,0,1,1,3,1,car_horn")
  rows.append("7777-2-0-0.wav,7777,0,1,1,2,2,children_playing")  # no file
  write_audio(os.path.join(root, "audio", "fold5", "8888-0-0-0.wav"),
              seconds=0.5)  # no row
  write_audio(os.path.join(root, "audio", "fold1", "5555-0-0-0.wav"),
              seconds=0.5)
  rows.append("5555-0-0-0.wav,5555,0,0.5,1,4,0,air_conditioner")  # fold 4
  with open(os.path.join(root, "metadata", "UrbanSound8K.csv"), "w") as f:
    f.write("\n".join(rows) + "\n")
  return {f"fold{k}": 2 for k in range(1, 11)}


# The release's clips per fold and class names (Salamon et al. 2014; the
# fold sizes are also `l3_tf.evaluation.audio_transfer`'s, which tells a
# full build from a subset).
US8K_FOLD_SIZES = (873, 888, 925, 990, 936, 823, 838, 806, 816, 837)
US8K_ALL_CLASSES = ("air_conditioner", "car_horn", "children_playing",
                    "dog_bark", "drilling", "engine_idling", "gun_shot",
                    "jackhammer", "siren", "street_music")


@generated.writes_marker
def write_urbansound8k_full(root: str | os.PathLike, sample_rate: int = 16000,
                            seed: int = 0) -> dict[str, int]:
  """A release-sized UrbanSound8K layout for timing the protocol: 8732 clips
  in the official fold sizes, 10 classes, 4 s long three times in four
  (as most of the release) and 0.3-4 s otherwise; slices of one recording
  (fsID, 1-8 slices) share a fold. A clip is its class's tone at a
  jittered pitch in seeded noise, so random features do not separate the
  classes perfectly. Mono 16-bit at `sample_rate` (the release is mostly
  44.1 kHz stereo: decoding and resampling are the builder's cost, not the
  protocol's). About 1 GB at 16 kHz; never commit it.

  Returns:
    Examples per split: {"fold1": 873, ..., "fold10": 837}.
  """
  root = os.fspath(root)
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "metadata"))
  rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
  fsid = 100000
  for fold, size in enumerate(US8K_FOLD_SIZES, start=1):
    os.makedirs(os.path.join(root, "audio", f"fold{fold}"))
    written = 0
    while written < size:
      fsid += 1
      class_id = int(rng.integers(len(US8K_ALL_CLASSES)))
      pitch = 200.0 * (class_id + 1) * rng.uniform(0.85, 1.15)
      for slice_ in range(min(int(rng.integers(1, 9)), size - written)):
        seconds = (4.0 if rng.random() < 0.75
                   else round(float(rng.uniform(0.3, 4.0)), 3))
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        samples = (0.3 * np.sin(2 * np.pi * pitch * t)
                   + 0.2 * rng.standard_normal(t.size))  # [n]
        name = f"{fsid}-{class_id}-0-{slice_}.wav"
        write_samples(os.path.join(root, "audio", f"fold{fold}", name),
                      np.clip(samples, -1, 1)[None].astype(np.float32),
                      sample_rate)
        start = 4.0 * slice_
        rows.append(f"{name},{fsid},{start},{start + seconds},"
                    f"{1 + slice_ % 2},{fold},{class_id},"
                    f"{US8K_ALL_CLASSES[class_id]}")
        written += 1
  with open(os.path.join(root, "metadata", "UrbanSound8K.csv"), "w") as f:
    f.write("\n".join(rows) + "\n")
  return {f"fold{k}": n for k, n in enumerate(US8K_FOLD_SIZES, start=1)}


KINETICS_CSV = {
    "train.csv": [
        ("label", "youtube_id", "time_start", "time_end", "split", "is_cc"),
        ("playing drums", "drumsAAAAAA", "10", "20", "train", "0"),
        ("playing drums", "drumsBBBBBB", "0", "10", "train", "0"),
        ("tap dancing", "tapCCCCCCCC", "5", "15", "train", "0"),
        ("bowling", "bowlDDDDDDD", "30", "40", "train", "0"),  # no clip
        ("cooking egg", "eggEEEEEEEE", "0", "10", "train", "0"),  # not listed
    ],
    "validate.csv": [
        ("label", "youtube_id", "time_start", "time_end", "split", "is_cc"),
        ("playing drums", "drumsFFFFFF", "0", "10", "val", "0"),
        ("tap dancing", "tapGGGGGGGG", "3", "13", "val", "0"),
    ],
    "test.csv": [
        ("youtube_id", "time_start", "time_end", "label", "split"),
        ("bowlHHHHHHH", "0", "10", "bowling", "test"),
    ],
}


@generated.writes_marker
def write_kinetics(root: str | os.PathLike) -> dict[str, int]:
  """Kinetics CSVs and clips: 3 / 2 / 1 Kinetics-Sounds clips, one listed
  clip missing, one clip of a class outside Kinetics-Sounds.

  Returns:
    Examples per split: {"train": 3, "validation": 2, "test": 1}.
  """
  root = os.fspath(root)
  os.makedirs(os.path.join(root, "clips", "part1"))
  for name, rows in KINETICS_CSV.items():
    with open(os.path.join(root, name), "w") as f:
      f.write("\n".join(",".join(row) for row in rows) + "\n")
  for name in ("drumsAAAAAA_000010_000020", "drumsBBBBBB_000000_000010",
               "tapCCCCCCCC_000005_000015", "eggEEEEEEEE_000000_000010"):
    write_video(os.path.join(root, "clips", f"{name}.mp4"), seconds=1.2,
                fps=10, width=64, height=48)
  write_video(os.path.join(root, "clips", "part1", "drumsFFFFFF_000000_000010.webm"),
              seconds=1.2, fps=10, width=64, height=48)
  write_video(os.path.join(root, "clips", "part1", "tapGGGGGGGG_000003_000013.mp4"),
              seconds=1.2, fps=10, width=64, height=48)
  write_video(os.path.join(root, "clips", "bowlHHHHHHH.mp4"), seconds=1.2,
              fps=10, width=64, height=48)
  return {"train": 3, "validation": 2, "test": 1}


FLICKR_VIDEOS = ("2011/03/1001.mp4", "2011/03/1002.mp4", "2011/04/1003.mp4",
                 "2012/1004.mp4", "2012/1005.webm", "2012/1006.mkv",
                 "2013/1007.mp4", "2013/1008.mp4", "2013/1009.mp4",
                 "2013/1010.mp4", "2014/1011.mp4", "2014/1012.mp4")


@generated.writes_marker
def write_flickr(root: str | os.PathLike) -> dict[str, int]:
  """A Flickr-like tree of 12 short videos and a stray file.

  Returns:
    Examples per split (80/10/10 by hash): train 9, validation 1, test 2.
  """
  root = os.fspath(root)
  for name in FLICKR_VIDEOS:
    os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
    write_video(os.path.join(root, name), seconds=1.1, fps=10, width=64,
                height=48)
  _write_bytes(os.path.join(root, "2012", "Thumbs.db"), b"\0" * 16)
  return {"train": 9, "validation": 1, "test": 2}


WRITERS = {"video_folder": write_video_folder, "esc10": write_esc10,
           "esc50": write_esc50, "dcase2013_scenes": write_dcase2013,
           "kinetics_sounds": write_kinetics, "flickr_soundnet": write_flickr,
           "urbansound8k": write_urbansound8k,
           "urbansound8k_full": write_urbansound8k_full}


def main(argv):
  if len(argv) != 3 or argv[1] not in WRITERS:
    print(__doc__)
    print(f"datasets: {sorted(WRITERS)}")
    return 2
  expected = WRITERS[argv[1]](argv[2])
  for path, outcome in sorted(expected.items()):
    print(f"{path:32s} {outcome if outcome is not None else 'built'}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
