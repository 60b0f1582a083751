"""A zip member stored uncompressed, read in place: a window onto the zip file that h5py
can open as a file (``hdf5._member``), and the member's CRC-32 checked over it."""

import io
import zipfile
import zlib


def check_crc(window, info):
    """The member's CRC-32 against the zip directory's, as zipfile (and Keras' load_model)
    check it when they read a member: read in place, a damaged member would otherwise be
    taken as it is (one flipped byte in the weights, a slightly wrong model). zlib.crc32
    took 0.19 s over 553 MB (VGG16's weights) here, on top of reading them once more."""
    crc = 0
    while block := window.read(1 << 22):
        crc = zlib.crc32(block, crc)
    window.seek(0)
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")


class Window(io.RawIOBase):
    """Bytes start..start+size of an open file, as a read-only seekable file."""

    def __init__(self, raw, start, size):
        super().__init__()
        self.raw, self.start, self.size, self.position = raw, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        origin = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, origin + offset)
        return self.position

    def tell(self):
        return self.position

    def readinto(self, buffer):
        count = max(0, min(len(buffer), self.size - self.position))
        self.raw.seek(self.start + self.position)
        got = self.raw.readinto(memoryview(buffer)[:count])
        self.position += got
        return got
