#!/usr/bin/env python3
"""weft's TensorBoard event files, read as TensorBoard reads them: the TFRecord framing with its
masked CRC-32C checksums, and the Event messages decoded by Python's protobuf runtime from
TensorFlow's message definitions (the parts weft writes: event.proto and summary.proto here,
compiled with protoc).

  tensorboard_events_test.py TENSORBOARD_TOOL

runs TENSORBOARD_TOOL (test/tensorboard/tensorboard_tool.cpp), which writes known scalars, and
checks every record. Exits 77 (skipped, for meson) when protoc or python3-protobuf is missing:
apt-get install protobuf-compiler python3-protobuf, or .ci/deps --python.
"""
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77


def crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def missing_tools():
    """A sentence naming what is missing, or None."""
    missing = []
    if shutil.which("protoc") is None:
        missing.append("protoc (protobuf-compiler)")
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        missing.append("Python's protobuf (python3-protobuf)")
    if not missing:
        return None
    return " and ".join(missing) + " missing; apt-get install protobuf-compiler python3-protobuf"


def compile_messages(out_dir):
    """The event_pb2 module of event.proto, compiled into out_dir (created)."""
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run(["protoc", "-I", HERE, "--python_out", out_dir,
                    os.path.join(HERE, "event.proto"), os.path.join(HERE, "summary.proto")], check=True)
    sys.path.insert(0, out_dir)
    import event_pb2
    return event_pb2


def has_unknown_fields(message):
    """True when the bytes held fields that the schema does not define (a wrong field number or type)."""
    unknown = getattr(message, "UnknownFields", None)
    if unknown is None:  # newer runtimes drop the accessor; there the check is left out
        return False
    if len(unknown()):
        return True
    return any(has_unknown_fields(v) for v in getattr(getattr(message, "summary", None), "value", []))


def read_events(path, event_pb2):
    """Every Event of a TFRecord file, each record's length and data checked against its CRC."""
    with open(path, "rb") as f:
        data = f.read()
    events, at = [], 0
    while at < len(data):
        assert len(data) - at >= 12, f"{path}: a truncated record header at byte {at}"
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        assert length_crc == masked_crc32c(header), f"{path}: the length CRC at byte {at} is wrong"
        body = data[at + 12:at + 12 + length]
        assert len(body) == length and len(data) >= at + 16 + length, f"{path}: a truncated record at byte {at}"
        (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        assert body_crc == masked_crc32c(body), f"{path}: the data CRC of the record at byte {at} is wrong"
        event = event_pb2.Event()
        event.ParseFromString(body)
        assert not has_unknown_fields(event), f"{path}: the record at byte {at} has fields TensorFlow's Event lacks"
        events.append(event)
        at += 16 + length
    return events


def check_file_version(path, events):
    assert events, f"{path} holds no records"
    first = events[0]
    assert first.WhichOneof("what") == "file_version" and first.file_version == "brain.Event:2", first
    assert abs(first.wall_time - time.time()) < 3600, f"wall_time {first.wall_time} is not now"


def scalars(events):
    """(step, tag, value) of every scalar after the file_version event, in file order."""
    out = []
    for e in events[1:]:
        assert e.WhichOneof("what") == "summary", e
        assert e.wall_time >= events[0].wall_time
        for v in e.summary.value:
            assert v.WhichOneof("value") == "simple_value", v
            out.append((e.step, v.tag, v.simple_value))
    return out


def float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main():
    assert crc32c(b"123456789") == 0xE3069283
    why = missing_tools()
    if why:
        print(f"skipped: {why}")
        return SKIP
    tool = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        event_pb2 = compile_messages(tmp)
        log_dir = os.path.join(tmp, "logs")
        path = subprocess.run([tool, log_dir], capture_output=True, text=True, check=True).stdout.strip()
        name = os.path.basename(path)
        assert os.path.dirname(path) == log_dir, path
        prefix = "events.out.tfevents."
        assert name.startswith(prefix), name
        seconds, host = name[len(prefix):].split(".", 1)
        assert abs(int(seconds) - time.time()) < 3600 and host, name
        events = read_events(path, event_pb2)
        check_file_version(path, events)
        assert len(events) == 6, events
        assert [e.step for e in events[1:]] == [0, 1, 1 << 40, -5, 2]
        assert len(events[5].summary.value) == 0 and events[5].WhichOneof("what") == "summary"
        got = scalars(events)
        want = [(0, "loss", 2.5), (0, "accuracy", 0.125), (1, "train/loss", float32(0.1)), (1 << 40, "loss", -3.0),
                (-5, "negative step", float32(1e-3))]
        assert got == want, f"\n got {got}\nwant {want}"
        assert not any(math.isnan(v) for _, _, v in got)
    print(f"ok: {len(events)} events, {len(got)} scalars")
    return 0


if __name__ == "__main__":
    sys.exit(main())
