//! Safetensors checkpoints, single-file or sharded (`model.safetensors.index.json`), memory-mapped.
//!
//! Tensors are handed out as `tch::Tensor`s copied from the mapped bytes, one at a time, so a
//! caller streaming layer by layer only ever holds what it asked for.

use crate::error::{ModelError, Result};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// One mmap'd shard.
struct Shard {
    path: PathBuf,
    mmap: Mmap,
    /// Parsed header.
    meta: safetensors::tensor::Metadata,
    /// Byte offset of the data section (8 + header length).
    data_start: usize,
}

/// All tensors of a checkpoint folder, by name.
pub struct Weights {
    shards: Vec<Shard>,
    /// tensor name -> shard index
    index: BTreeMap<String, usize>,
}

/// Map a safetensors dtype to a torch kind. Errors for dtypes torch has no kind for.
pub fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::I16 => Kind::Int16,
        Dtype::I32 => Kind::Int,
        Dtype::I64 => Kind::Int64,
        Dtype::BOOL => Kind::Bool,
        Dtype::F8_E4M3 => Kind::Float8e4m3fn,
        Dtype::F8_E5M2 => Kind::Float8e5m2,
        _ => return None,
    })
}

/// Map a torch kind to a safetensors dtype (for writers).
pub fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Int16 => Dtype::I16,
        Kind::Int => Dtype::I32,
        Kind::Int64 => Dtype::I64,
        Kind::Bool => Dtype::BOOL,
        Kind::Float8e4m3fn => Dtype::F8_E4M3,
        Kind::Float8e5m2 => Dtype::F8_E5M2,
        _ => return None,
    })
}

impl Weights {
    /// Open the checkpoint in `dir`: `model.safetensors.index.json` if present (sharded), else
    /// every `*.safetensors` file in the folder.
    ///
    /// Errors: no safetensors file, an unreadable or corrupt file (header does not parse), a
    /// shard named by the index that is missing, a tensor name found in two files.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join("model.safetensors.index.json");
        let mut files: Vec<PathBuf> = Vec::new();
        if index_path.exists() {
            let text =
                std::fs::read_to_string(&index_path).map_err(|e| ModelError::io(&index_path, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ModelError::Format {
                    file: index_path.clone(),
                    msg: format!("not valid JSON: {e}"),
                })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ModelError::Config {
                    file: index_path.clone(),
                    field: "weight_map".into(),
                    msg: "missing or not an object".into(),
                })?;
            let mut seen: Vec<String> = map
                .values()
                .filter_map(|s| s.as_str().map(String::from))
                .collect();
            seen.sort();
            seen.dedup();
            files = seen.into_iter().map(|f| dir.join(f)).collect();
        } else {
            let rd = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
            for entry in rd {
                let p = entry.map_err(|e| ModelError::io(dir, e))?.path();
                if p.extension().is_some_and(|e| e == "safetensors") {
                    files.push(p);
                }
            }
            files.sort();
        }
        if files.is_empty() {
            return Err(ModelError::Format {
                file: dir.to_path_buf(),
                msg: "no model.safetensors (or shards) in this folder".into(),
            });
        }
        let mut shards = Vec::new();
        let mut index = BTreeMap::new();
        for (i, path) in files.into_iter().enumerate() {
            let f = File::open(&path).map_err(|e| ModelError::io(&path, e))?;
            // SAFETY: the file is opened read-only; we never mutate it while mapped.
            let mmap = unsafe { Mmap::map(&f) }.map_err(|e| ModelError::io(&path, e))?;
            let (header_len, meta) =
                SafeTensors::read_metadata(&mmap).map_err(|e| ModelError::Format {
                    file: path.clone(),
                    msg: format!("corrupt safetensors file: {e}"),
                })?;
            for n in meta.tensors().into_keys() {
                if index.insert(n.clone(), i).is_some() {
                    return Err(ModelError::Tensor {
                        file: path.clone(),
                        tensor: n,
                        msg: "appears in two shards".into(),
                    });
                }
            }
            shards.push(Shard {
                path,
                mmap,
                meta,
                data_start: 8 + header_len,
            });
        }
        Ok(Weights { shards, index })
    }

    /// Whether a tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(|s| s.as_str())
    }

    /// The file that holds `name` (for error messages).
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.index.get(name).map(|&i| self.shards[i].path.as_path())
    }

    /// The shard holding `name`, its header entry, and the tensor's bytes (header parsed once at
    /// open; `read_metadata` validated every offset against the file size).
    fn locate(&self, name: &str) -> Result<(&Shard, &safetensors::tensor::TensorInfo, &[u8])> {
        let i = *self.index.get(name).ok_or_else(|| self.missing(name))?;
        let sh = &self.shards[i];
        let info = sh.meta.info(name).ok_or_else(|| self.missing(name))?;
        let (a, b) = info.data_offsets;
        let bytes = sh
            .mmap
            .get(sh.data_start + a..sh.data_start + b)
            .ok_or_else(|| ModelError::Tensor {
                file: sh.path.clone(),
                tensor: name.into(),
                msg: "data offsets run past the end of the file".into(),
            })?;
        Ok((sh, info, bytes))
    }

    /// Shape and dtype of a tensor without copying it.
    pub fn info(&self, name: &str) -> Result<(Vec<usize>, Dtype)> {
        let (_, info, _) = self.locate(name)?;
        Ok((info.shape.clone(), info.dtype))
    }

    fn missing(&self, name: &str) -> ModelError {
        ModelError::Tensor {
            file: self
                .shards
                .first()
                .map(|s| s.path.clone())
                .unwrap_or_default(),
            tensor: name.into(),
            msg: "missing from the checkpoint".into(),
        }
    }

    /// Copy tensor `name` into a CPU `Tensor` of its stored kind.
    ///
    /// Errors: the tensor is missing, or has a dtype torch cannot hold.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        let (sh, info, bytes) = self.locate(name)?;
        let kind = kind_of(info.dtype).ok_or_else(|| ModelError::Tensor {
            file: sh.path.clone(),
            tensor: name.into(),
            msg: format!("unsupported dtype {:?}", info.dtype),
        })?;
        let shape: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
        Ok(Tensor::f_from_data_size(bytes, &shape, kind)?)
    }

    /// Like [`Weights::get`] but checks the shape.
    pub fn get_shaped(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self.get(name)?;
        if t.size() != shape {
            return Err(ModelError::Tensor {
                file: self
                    .file_of(name)
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
                tensor: name.into(),
                msg: format!("shape {:?}, expected {:?}", t.size(), shape),
            });
        }
        Ok(t)
    }
}

/// Write `tensors` as one safetensors file at `path` (atomically: `path.tmp` then rename).
///
/// Tensors are made contiguous and moved to the CPU first. Errors: a kind safetensors cannot
/// store, or I/O.
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    struct View {
        dtype: Dtype,
        shape: Vec<usize>,
        data: Vec<u8>,
    }
    impl safetensors::View for &View {
        fn dtype(&self) -> Dtype {
            self.dtype
        }
        fn shape(&self) -> &[usize] {
            &self.shape
        }
        fn data(&self) -> std::borrow::Cow<'_, [u8]> {
            std::borrow::Cow::Borrowed(&self.data)
        }
        fn data_len(&self) -> usize {
            self.data.len()
        }
    }
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(tch::Device::Cpu).contiguous();
        let dtype = dtype_of(t.kind()).ok_or_else(|| ModelError::Tensor {
            file: path.to_path_buf(),
            tensor: name.clone(),
            msg: format!("kind {:?} cannot be stored in safetensors", t.kind()),
        })?;
        let numel = t.numel();
        let nbytes = numel * t.kind().elt_size_in_bytes();
        let mut data = vec![0u8; nbytes];
        if numel > 0 {
            // SAFETY: `t` is contiguous on the CPU with exactly `nbytes` bytes of storage.
            unsafe {
                std::ptr::copy_nonoverlapping(t.data_ptr() as *const u8, data.as_mut_ptr(), nbytes);
            }
        }
        views.push((
            name.clone(),
            View {
                dtype,
                shape: t.size().iter().map(|&d| d as usize).collect(),
                data,
            },
        ));
    }
    let refs: Vec<(String, &View)> = views.iter().map(|(n, v)| (n.clone(), v)).collect();
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(refs, metadata, &tmp).map_err(|e| ModelError::Format {
        file: tmp.clone(),
        msg: e.to_string(),
    })?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))?;
    Ok(())
}
