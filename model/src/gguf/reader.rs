//! GGUF container reader (v2 and v3, little-endian), over a read-only memory map.
//!
//! Layout, from the GGUF spec (`ggml/docs/gguf.md`) and gguf-py `gguf/gguf_reader.py`:
//!
//! ```text
//! magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//! n_kv × (string key, u32 value type, value)            string = u64 length + UTF-8 bytes
//! n_tensors × (string name, u32 n_dims, n_dims × u64 dim, u32 ggml type, u64 offset)
//! padding to `general.alignment` (default 32) | tensor data (offsets relative to its start)
//! ```
//!
//! Dims are listed innermost first; [`TensorInfo::shape`] reverses them to the row-major
//! (PyTorch) order. Every length, count and offset read from the file is checked against the file
//! size before use, so a truncated or corrupt file gives an `Err` (with the file name and the
//! field) instead of a panic or a huge allocation.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use memmap2::Mmap;

use super::quants::{self, GgmlType};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Tensor data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;
/// Deepest nesting of arrays accepted (the spec allows arrays of arrays; this bounds recursion).
const MAX_ARRAY_DEPTH: usize = 8;

/// A metadata value, one variant per `gguf_metadata_value_type` (ids 0..=12).
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7 (one byte, must be 0 or 1).
    Bool(bool),
    /// Type 8.
    String(String),
    /// Type 9: elements all of one type (possibly arrays themselves).
    Array(Vec<MetadataValue>),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

impl MetadataValue {
    /// The spec's name of the value's type (`UINT32`, `STRING`, `ARRAY`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "UINT8",
            Self::I8(_) => "INT8",
            Self::U16(_) => "UINT16",
            Self::I16(_) => "INT16",
            Self::U32(_) => "UINT32",
            Self::I32(_) => "INT32",
            Self::F32(_) => "FLOAT32",
            Self::Bool(_) => "BOOL",
            Self::String(_) => "STRING",
            Self::Array(_) => "ARRAY",
            Self::U64(_) => "UINT64",
            Self::I64(_) => "INT64",
            Self::F64(_) => "FLOAT64",
        }
    }

    /// Any integer type as i128 (lossless), `None` for non-integers.
    fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Self::U8(v) => v.into(),
            Self::I8(v) => v.into(),
            Self::U16(v) => v.into(),
            Self::I16(v) => v.into(),
            Self::U32(v) => v.into(),
            Self::I32(v) => v.into(),
            Self::U64(v) => v.into(),
            Self::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// Any integer type whose value fits a u64.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i128().and_then(|v| u64::try_from(v).ok())
    }

    /// Any integer type whose value fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_i128().and_then(|v| i64::try_from(v).ok())
    }

    /// `FLOAT32` or `FLOAT64` as f64 (an f32 is widened exactly).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }

    /// `BOOL`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// `STRING`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// `ARRAY`.
    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            Self::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// One tensor info record.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// GGUF tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions as stored: innermost (contiguous) first.
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Byte offset of the data, relative to the start of the data section.
    pub offset: u64,
    /// Number of elements (product of `dims`).
    pub n_elements: u64,
    /// Number of bytes of data, `None` when the type id is unknown.
    pub n_bytes: Option<u64>,
}

impl TensorInfo {
    /// Row-major shape (PyTorch order): `dims` reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// A parsed GGUF file: metadata, tensor infos and the mapped bytes.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, MetadataValue)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("n_metadata", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

/// Bounds-checked little-endian reader; errors are short reasons without the file name.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], String> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "file ends early (needs {n} bytes at offset {}, {left} left) while reading {}",
                self.pos,
                what()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn left(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], String> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, String> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{} is not valid UTF-8", what()))
    }

    /// One value of type id `ty`; `depth` counts enclosing arrays.
    fn value(
        &mut self,
        ty: u32,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> Result<MetadataValue, String> {
        use MetadataValue as V;
        Ok(match ty {
            0 => V::U8(self.array::<1>(what)?[0]),
            1 => V::I8(self.array::<1>(what)?[0] as i8),
            2 => V::U16(u16::from_le_bytes(self.array(what)?)),
            3 => V::I16(i16::from_le_bytes(self.array(what)?)),
            4 => V::U32(self.u32(what)?),
            5 => V::I32(i32::from_le_bytes(self.array(what)?)),
            6 => V::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => V::Bool(false),
                1 => V::Bool(true),
                b => return Err(format!("{}: bool byte is {b}, not 0 or 1", what())),
            },
            8 => V::String(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format!(
                        "{}: arrays nested deeper than {MAX_ARRAY_DEPTH}",
                        what()
                    ));
                }
                let elem_ty = self.u32(what)?;
                let len = self.u64(what)?;
                // Smallest possible encoding of one element, to reject absurd lengths before
                // allocating.
                let min_size: u64 = match elem_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => return Err(format!("{}: unknown array element type {t}", what())),
                };
                if len.checked_mul(min_size).is_none_or(|n| n > self.left()) {
                    return Err(format!(
                        "file ends early while reading {}: an array of {len} elements does not fit \
                         in the {} bytes left",
                        what(),
                        self.left()
                    ));
                }
                let mut items = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let elem_what = || format!("{} element {i}", what());
                    items.push(self.value(elem_ty, depth + 1, &elem_what)?);
                }
                V::Array(items)
            }
            10 => V::U64(self.u64(what)?),
            11 => V::I64(i64::from_le_bytes(self.array(what)?)),
            12 => V::F64(f64::from_le_bytes(self.array(what)?)),
            t => return Err(format!("{}: unknown value type {t}", what())),
        })
    }
}

impl GgufFile {
    /// Map and parse `path`: header, all metadata, all tensor infos, alignment and data offset.
    ///
    /// Errors (one line, starting with the path): the file cannot be opened, bad magic,
    /// big-endian or unsupported version (only 2 and 3 are read), a field running past the end of
    /// the file, invalid UTF-8, unknown value types, duplicate keys or tensor names, more than 4
    /// dims, an alignment that is not a power of two, a tensor offset that is not aligned, or
    /// tensor data (for known types) outside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let fail = |msg: String| anyhow!("{}: {msg}", path.display());
        let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| fail(format!("cannot stat: {e}")))?
            .len();
        if len < 4 {
            return Err(fail(format!("not a GGUF file ({len} bytes long)")));
        }
        // SAFETY: the map is read-only and private to this struct; like every mmap-based reader
        // (gguf-py uses numpy.memmap) we rely on the file not being truncated while it is open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| fail(format!("cannot mmap: {e}")))?;
        Self::parse(path.to_path_buf(), mmap).map_err(fail)
    }

    fn parse(path: PathBuf, mmap: Mmap) -> Result<Self, String> {
        let mut c = Cursor { buf: &mmap, pos: 0 };
        let magic: [u8; 4] = c.array(&|| "magic".into())?;
        if magic != GGUF_MAGIC {
            return Err(format!(
                "bad magic {:?} (expected \"GGUF\"): not a GGUF file",
                String::from_utf8_lossy(&magic)
            ));
        }
        let version = c.u32(&|| "version".into())?;
        if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            return Err(format!(
                "big-endian GGUF (version {}) is not supported",
                version.swap_bytes()
            ));
        }
        if version != 2 && version != 3 {
            return Err(format!("unsupported GGUF version {version} (only 2 and 3)"));
        }
        let n_tensors = c.u64(&|| "tensor count".into())?;
        let n_kv = c.u64(&|| "metadata count".into())?;
        // A key/value pair takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 4 + 8.
        if n_kv.checked_mul(13).is_none_or(|n| n > c.left()) {
            return Err(format!(
                "metadata count {n_kv} is larger than the file can hold"
            ));
        }
        if n_tensors.checked_mul(24).is_none_or(|n| n > c.left()) {
            return Err(format!(
                "tensor count {n_tensors} is larger than the file can hold"
            ));
        }

        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut index = HashMap::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let key = c.string(&|| format!("metadata key #{i}"))?;
            let what = || format!("metadata key '{key}'");
            let ty = c.u32(&what)?;
            let value = c.value(ty, 0, &what)?;
            if index.insert(key.clone(), metadata.len()).is_some() {
                return Err(format!("duplicate metadata key '{key}'"));
            }
            metadata.push((key, value));
        }

        let alignment = match index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => {
                let v = &metadata[i].1;
                match v.as_u64() {
                    Some(a) if a.is_power_of_two() => a,
                    _ => {
                        return Err(format!(
                            "metadata key 'general.alignment' is {v:?}, expected a power of two"
                        ))
                    }
                }
            }
        };

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut names = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = c.string(&|| format!("tensor info #{i} name"))?;
            let what = || format!("tensor info '{name}'");
            let n_dims = c.u32(&what)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(format!(
                    "tensor '{name}': {n_dims} dims (1 to {MAX_DIMS} allowed)"
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&what)?);
            }
            let ggml_type = GgmlType(c.u32(&what)?);
            let offset = c.u64(&what)?;
            let n_elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| format!("tensor '{name}': element count overflows ({dims:?})"))?;
            let n_bytes = match ggml_type.block_layout() {
                None => None,
                Some((block, size)) => {
                    if dims[0] % block != 0 {
                        return Err(format!(
                            "tensor '{name}': row length {} is not a multiple of the {} block size {block}",
                            dims[0], ggml_type
                        ));
                    }
                    Some((n_elements / block).checked_mul(size).ok_or_else(|| {
                        format!("tensor '{name}': byte size overflows ({dims:?})")
                    })?)
                }
            };
            if offset % alignment != 0 {
                return Err(format!(
                    "tensor '{name}': offset {offset} is not a multiple of the alignment {alignment}"
                ));
            }
            if names.insert(name.clone(), tensors.len()).is_some() {
                return Err(format!("duplicate tensor name '{name}'"));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                n_elements,
                n_bytes,
            });
        }

        let data_offset = (c.pos as u64).next_multiple_of(alignment);
        let file_len = mmap.len() as u64;
        for t in &tensors {
            if let Some(n) = t.n_bytes {
                let end = data_offset
                    .checked_add(t.offset)
                    .and_then(|s| s.checked_add(n));
                if end.is_none_or(|e| e > file_len) {
                    return Err(format!(
                        "tensor '{}': data at offset {} + {} bytes runs past the end of the file \
                         ({file_len} bytes; data section starts at {data_offset}): file truncated?",
                        t.name, t.offset, n
                    ));
                }
            }
        }

        Ok(Self {
            path,
            mmap,
            version,
            alignment,
            data_offset,
            metadata,
            index,
            tensors,
        })
    }

    /// The path this file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset where tensor data starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.metadata
    }

    /// The metadata value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// One-line error naming this file.
    pub(crate) fn error(&self, msg: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}: {msg}", self.path.display())
    }

    /// The raw bytes of a tensor of this file (bounds were checked by [`GgufFile::open`]).
    ///
    /// Errors when the tensor's type id is unknown (its size cannot be computed).
    pub fn tensor_bytes(&self, t: &TensorInfo) -> Result<&[u8]> {
        let n = t.n_bytes.ok_or_else(|| {
            self.error(format_args!(
                "tensor '{}': unknown ggml type id {}",
                t.name, t.ggml_type.0
            ))
        })?;
        let start = (self.data_offset + t.offset) as usize;
        self.mmap
            .get(start..start + n as usize)
            .ok_or_else(|| self.error(format_args!("tensor '{}': data outside the file", t.name)))
    }

    /// The tensor dequantized to f32, row-major in the order of [`TensorInfo::shape`].
    ///
    /// Supported types: F32, F16, BF16, Q4_0, Q4_1, Q8_0 (formulas of gguf-py `gguf/quants.py`,
    /// see [`super::quants`]); others give `tensor 'NAME': unsupported ggml type Q5_K`.
    pub fn tensor_f32(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let bytes = self.tensor_bytes(t)?;
        let mut out = Vec::new();
        quants::dequantize(t.ggml_type, bytes, &mut out)
            .map_err(|e| self.error(format_args!("tensor '{}': {e}", t.name)))?;
        Ok(out)
    }
}
