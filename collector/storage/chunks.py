"""Image chunks compressed outside HDF5, byte for byte as its filter pipeline would store them.

The recorder compresses frames as they arrive, on a thread of its own, and the writer stores the
prepared bytes with ``write_direct_chunk`` (:func:`write_chunks`), so that writing the pre-roll at
an episode's Start costs no compression on the writer thread. Every reader (h5py, SWMR readers,
``collector verify``, recovery) reads such chunks unchanged: they are what HDF5 would have written.

Byte-exact because the compressors are HDF5's own: :func:`chunk_encoder` reads the pipeline the
dataset really has and runs each hdf5plugin filter's own filter function (the plugin's
``H5PLget_plugin_info`` entry, the one HDF5 calls) with the parameters stored in the dataset.
Fletcher-32, a filter built into HDF5, is computed here. ctypes releases the GIL for the length
of each compression, so the encoder thread runs beside the writer.

Example::

    encode = chunk_encoder(dataset)           # None: some filter cannot be reproduced here
    chunks = [encode(frame) for frame in frames]               # on any thread
    write_chunks(dataset, dataset.shape[0], chunks)            # on the writing thread
"""

from __future__ import annotations

import ctypes
import functools
import io
import sys
from typing import Callable, Sequence

import h5py
import hdf5plugin
import numpy as np
import numpy.typing as npt

#: Turns bytes into the bytes one filter of a pipeline stores.
_Stage = Callable[[np.ndarray], bytes]
_Pipeline = tuple[tuple[int, tuple[int, ...]], ...]

# HDF5's filter callback (H5Z_func_t) and the start of its plugin descriptor (H5Z_class2_t).
_FILTER_FUNCTION = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_uint, ctypes.c_size_t,
                                    ctypes.POINTER(ctypes.c_uint), ctypes.c_size_t,
                                    ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p))
_H5Z_CLASS_T_VERS = 1
#: Words per row when :func:`fletcher32` sums a chunk as a matrix (vectorised, not word by word).
_FLETCHER_ROW = 512


class _FilterClass(ctypes.Structure):
    _fields_ = [("version", ctypes.c_int), ("id", ctypes.c_int), ("encoder_present", ctypes.c_uint),
                ("decoder_present", ctypes.c_uint), ("name", ctypes.c_char_p),
                ("can_apply", ctypes.c_void_p), ("set_local", ctypes.c_void_p),
                ("filter", ctypes.c_void_p)]


#: Plugins whose filter function, once the library is initialised, touches nothing of HDF5 and
#: allocates with the C library's malloc/free (read in their sources; hdf5plugin's builds link no
#: HDF5 symbol); the value names the plugin's one-time initialisation, which is not thread-safe.
#: Blosc2's filter also shares a static scratch header between calls: calls racing on it for
#: chunks of different sizes could choose another block size, still valid but not HDF5's bytes.
_PLUGINS = {hdf5plugin.FILTERS["blosc2"]: "blosc2_init", hdf5plugin.FILTERS["lz4"]: None,
            hdf5plugin.FILTERS["zstd"]: None}

# The process's C library, whose malloc/free the plugins use. None on Windows, where each DLL
# may have a C runtime of its own: there the caller writes plainly.
_libc = None if sys.platform == "win32" else ctypes.CDLL(None)
if _libc is not None:
    _libc.malloc.argtypes, _libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
    _libc.free.argtypes, _libc.free.restype = [ctypes.c_void_p], None


class ChunkEncoder:
    """Turns one frame into the bytes HDF5 stores for its chunk in a dataset with the encoder's
    filter pipeline (:func:`chunk_encoder`, :func:`chunk_encoder_for`). Callable on any thread:
    it uses no HDF5, and ctypes releases the GIL while a plugin compresses."""

    def __init__(self, frame_shape: tuple[int, ...], dtype: np.dtype, pipeline: _Pipeline,
                 stages: list[_Stage]):
        self.frame_shape, self.dtype = frame_shape, dtype
        #: The filters as ``(id, parameters)``, in the order HDF5 applies them when writing.
        self.pipeline = pipeline
        self._stages = stages

    def __call__(self, frame: np.ndarray) -> bytes:
        """The chunk of ``frame``; raises ``ValueError`` for a frame of another shape or dtype
        and ``RuntimeError`` if a filter fails (HDF5 would skip that optional filter): write
        such a frame plainly."""
        if frame.shape != self.frame_shape or frame.dtype != self.dtype:
            raise ValueError(f"a frame of shape {self.frame_shape} and dtype {self.dtype} is "
                             f"expected, got {frame.shape} {frame.dtype}")
        stored = np.ascontiguousarray(frame).reshape(-1).view(np.uint8)
        for stage in self._stages:
            stored = np.frombuffer(stage(stored), np.uint8)
        return stored.tobytes()

    def fits(self, dataset: h5py.Dataset) -> bool:
        """Whether this encoder's chunks are ``dataset``'s: same frames, chunks and pipeline."""
        return (dataset.shape[1:] == self.frame_shape and dataset.dtype == self.dtype
                and dataset.chunks == (1, *self.frame_shape) and _pipeline(dataset) == self.pipeline)


def chunk_encoder(dataset: h5py.Dataset) -> ChunkEncoder | None:
    """The encoder of ``dataset``'s chunks, read from the filter pipeline it really has.

    ``dataset`` must hold one frame per chunk (chunks ``(1, *frame shape)``). Returns ``None``
    when it is chunked otherwise, or its pipeline has a filter other than Fletcher-32, Blosc2,
    LZ4 and Zstd (from hdf5plugin): the caller then writes plainly.

    Call it on the thread that writes files, before frames are encoded elsewhere: it may
    initialise a plugin's library, which must not race with HDF5 using the same plugin.
    """
    frame_shape = dataset.shape[1:]
    if _libc is None or dataset.chunks != (1, *frame_shape):
        return None
    pipeline = _pipeline(dataset)
    stages: list[_Stage] = []
    for filter_id, values in pipeline:
        if filter_id == h5py.h5z.FILTER_FLETCHER32:
            stages.append(_with_fletcher32)
            continue
        function = _plugin_filter(filter_id)
        if function is None:
            return None
        stages.append(functools.partial(_run_filter, function, (ctypes.c_uint * len(values))(*values)))
    return ChunkEncoder(frame_shape, dataset.dtype, pipeline, stages)


def chunk_encoder_for(frame_shape: tuple[int, ...], dtype: npt.DTypeLike, options: dict) -> ChunkEncoder | None:
    """:func:`chunk_encoder` before any episode file exists (frames held for the pre-roll): of a
    one-frame-per-chunk dataset made with ``options`` (h5py ``create_dataset`` keywords, as the
    writer passes them) in a file in memory. Check :meth:`ChunkEncoder.fits` on the real one."""
    with h5py.File(io.BytesIO(), "w") as h5:
        template = h5.create_dataset("frames", (0, *frame_shape), dtype=dtype,
                                     maxshape=(None, *frame_shape), chunks=(1, *frame_shape), **options)
        return chunk_encoder(template)


def write_chunks(dataset: h5py.Dataset, first_row: int, chunks: Sequence[bytes]) -> None:
    """Store ``chunks`` (from :func:`chunk_encoder`) as rows ``first_row...`` of ``dataset``,
    growing it as needed; works in SWMR mode, where readers see the rows after the next flush."""
    end = first_row + len(chunks)
    if dataset.shape[0] < end:
        dataset.resize(end, axis=0)
    inner = (0,) * (dataset.ndim - 1)
    for row, chunk in enumerate(chunks, first_row):
        dataset.id.write_direct_chunk((row, *inner), chunk, 0)  # mask 0: every filter applied


def fletcher32(data: np.ndarray) -> int:
    """HDF5's Fletcher-32 (``H5_checksum_fletcher32``) of the bytes ``data`` (``uint8``).

    HDF5 sums big-endian 16-bit words (an odd last byte counts as its word's high byte) and folds
    the sums into 16 bits as it goes, which leaves each sum congruent to the plain sum modulo
    65535 and zero only when all words are: 65535 stands for a nonzero multiple of 65535."""
    count = (len(data) + 1) // 2
    rows = -(-count // _FLETCHER_ROW)
    padded = np.zeros(rows * _FLETCHER_ROW * 2, np.uint8)  # zero words change neither sum
    padded[:len(data)] = data
    words = padded.view(">u2").reshape(rows, _FLETCHER_ROW)
    row_sums = words.sum(axis=1, dtype=np.uint64)
    sum1 = int(row_sums.sum())
    if sum1 == 0:
        return 0
    # sum2 adds the running sum1 after each word, so word i counts (count - i) times; with
    # i = row * _FLETCHER_ROW + column that is (count - row * _FLETCHER_ROW) times its row's sum
    # less column times its column's sum. Reduced modulo 65535 first, so nothing overflows.
    row_weights = (count - np.arange(rows, dtype=np.uint64) * _FLETCHER_ROW) % 65535
    column_sums = words.sum(axis=0, dtype=np.uint64) % 65535
    sum2 = (int(np.dot(row_sums % 65535, row_weights))
            - int(np.dot(column_sums, np.arange(_FLETCHER_ROW, dtype=np.uint64)))) % 65535
    return (sum2 or 65535) << 16 | (sum1 % 65535 or 65535)


def _pipeline(dataset: h5py.Dataset) -> _Pipeline:
    plist = dataset.id.get_create_plist()
    filters = [plist.get_filter(index) for index in range(plist.get_nfilters())]
    return tuple((filter_id, values) for filter_id, _flags, values, _name in filters)


def _with_fletcher32(data: np.ndarray) -> bytes:
    # HDF5 appends the checksum little-endian (UINT32ENCODE in H5Zfletcher32.c).
    return data.tobytes() + fletcher32(data).to_bytes(4, "little")


@functools.cache
def _plugin_filter(filter_id: int) -> Callable | None:
    """The filter function of hdf5plugin's plugin for ``filter_id``, or ``None``."""
    names = {number: name for name, number in hdf5plugin.FILTERS.items()}
    path = hdf5plugin.get_config().registered_filters.get(names.get(filter_id, ""))
    if filter_id not in _PLUGINS or path is None:
        return None
    library = ctypes.CDLL(path)  # the library HDF5 already loaded: same file, same handle
    library.H5PLget_plugin_info.restype = ctypes.c_void_p
    descriptor = _FilterClass.from_address(library.H5PLget_plugin_info())
    if descriptor.version != _H5Z_CLASS_T_VERS or descriptor.id != filter_id or not descriptor.filter:
        return None
    if _PLUGINS[filter_id]:
        getattr(library, _PLUGINS[filter_id])()
    return _FILTER_FUNCTION(descriptor.filter)


def _run_filter(function: Callable, values: ctypes.Array, data: np.ndarray) -> bytes:
    """Run a plugin's filter forward over ``data``, as HDF5 does when it writes a chunk."""
    # The filter frees the buffer it is given and returns one it allocated, both with malloc/free.
    size = len(data)
    buffer = ctypes.c_void_p(_libc.malloc(max(1, size)))
    if not buffer.value:
        raise MemoryError(f"cannot allocate {size} bytes for a chunk")
    try:
        ctypes.memmove(buffer, data.ctypes.data, size)
        buffer_size = ctypes.c_size_t(size)
        stored = function(0, len(values), values, size, ctypes.byref(buffer_size), ctypes.byref(buffer))
        if stored == 0:
            raise RuntimeError(f"a chunk filter failed on {size} bytes")
        return ctypes.string_at(buffer, stored)
    finally:
        _libc.free(buffer)
