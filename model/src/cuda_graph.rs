//! CUDA graphs for the decode step: capture the kernels of one step once, then replay them, so a
//! step costs one launch instead of one per operator (the decode loop of an 8B model at batch 64
//! is otherwise bound by the host launching ~1,000 kernels a step). A thin wrapper over libtorch's
//! `at::cuda::CUDAGraph` (the class behind `torch.cuda.CUDAGraph`) through the C shim
//! `model/csrc/cuda_graph.cpp`, built when the libtorch we link has CUDA (see `model/build.rs`).
//!
//! Rules for what runs between [`Graph::capture`]'s begin and end (as for `torch.cuda.graph`):
//! no host synchronisation, no host-to-device copies, no shape that changes between replays;
//! inputs live in tensors allocated before capture and are overwritten in place before each
//! replay; outputs are the tensors the captured closure returned, overwritten by each replay.

use crate::error::{ModelError, Result};

#[cfg(quantlab_cuda_graph)]
mod ffi {
    use std::os::raw::{c_char, c_int, c_void};
    extern "C" {
        pub fn ql_graph_last_error() -> *const c_char;
        pub fn ql_graph_new(device: c_int) -> *mut c_void;
        pub fn ql_graph_free(g: *mut c_void);
        pub fn ql_graph_enter_side(g: *mut c_void) -> c_int;
        pub fn ql_graph_leave_side(g: *mut c_void) -> c_int;
        pub fn ql_graph_capture_begin(g: *mut c_void) -> c_int;
        pub fn ql_graph_capture_end(g: *mut c_void) -> c_int;
        pub fn ql_graph_replay(g: *mut c_void) -> c_int;
        pub fn ql_cuda_peak_allocated(device: c_int) -> i64;
        pub fn ql_cuda_reset_peak(device: c_int) -> c_int;
    }
}

/// Whether this build can capture CUDA graphs (the shim was compiled).
pub fn available() -> bool {
    cfg!(quantlab_cuda_graph)
}

/// Peak bytes held by libtorch's CUDA caching allocator on `device` since the last
/// [`reset_peak_allocated`] (what `torch.cuda.max_memory_allocated` reports). `None` without
/// CUDA-graph support or on error.
pub fn peak_allocated(device: usize) -> Option<u64> {
    #[cfg(quantlab_cuda_graph)]
    {
        // SAFETY: reads allocator statistics; returns -1 on error.
        let v = unsafe { ffi::ql_cuda_peak_allocated(device as i32) };
        (v >= 0).then_some(v as u64)
    }
    #[cfg(not(quantlab_cuda_graph))]
    {
        let _ = device;
        None
    }
}

/// [`peak_allocated`] in GiB (2³⁰ bytes), the unit of the compress reports and debug logs.
pub fn peak_allocated_gib(device: usize) -> Option<f64> {
    peak_allocated(device).map(|b| b as f64 / (1u64 << 30) as f64)
}

/// Start a new peak for [`peak_allocated`] (`torch.cuda.reset_peak_memory_stats`).
pub fn reset_peak_allocated(device: usize) {
    #[cfg(quantlab_cuda_graph)]
    // SAFETY: resets allocator statistics; errors are ignored (the peak then keeps counting).
    unsafe {
        ffi::ql_cuda_reset_peak(device as i32);
    }
    #[cfg(not(quantlab_cuda_graph))]
    let _ = device;
}

/// One captured CUDA graph on one device.
pub struct Graph {
    #[cfg(quantlab_cuda_graph)]
    ptr: *mut std::os::raw::c_void,
    captured: bool,
}

#[cfg(quantlab_cuda_graph)]
fn check(rc: i32, what: &str) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    // SAFETY: the shim returns a pointer to its thread-local, NUL-terminated error string.
    let msg = unsafe { std::ffi::CStr::from_ptr(ffi::ql_graph_last_error()) }
        .to_string_lossy()
        .into_owned();
    Err(ModelError::Other(format!("CUDA graph {what}: {msg}")))
}

impl Graph {
    /// A new, empty graph for CUDA device `device`. Errors when this build has no CUDA-graph
    /// support or libtorch fails to create the capture stream.
    pub fn new(device: usize) -> Result<Graph> {
        #[cfg(quantlab_cuda_graph)]
        {
            // SAFETY: plain constructor; a null return means failure, reported below.
            let ptr = unsafe { ffi::ql_graph_new(device as i32) };
            if ptr.is_null() {
                check(1, "create")?;
            }
            Ok(Graph {
                ptr,
                captured: false,
            })
        }
        #[cfg(not(quantlab_cuda_graph))]
        {
            let _ = device;
            Err(ModelError::Other(
                "this build has no CUDA-graph support (libtorch without CUDA headers)".into(),
            ))
        }
    }

    /// Run `f` once eagerly on the capture stream (warm-up: cuBLAS handles and workspaces are
    /// created for that stream), then capture a second run of `f` into the graph. Returns the
    /// warm-up's result and the captured run's outputs (the tensors each replay overwrites).
    /// A panic inside `f` during capture ends the capture and is returned as an error.
    pub fn capture<T>(&mut self, f: &mut dyn FnMut() -> T) -> Result<(T, T)> {
        #[cfg(quantlab_cuda_graph)]
        {
            use std::panic::{catch_unwind, AssertUnwindSafe};
            // SAFETY: self.ptr is a live graph; enter/leave are paired on this thread.
            check(unsafe { ffi::ql_graph_enter_side(self.ptr) }, "warm-up")?;
            let warm = catch_unwind(AssertUnwindSafe(&mut *f));
            check(unsafe { ffi::ql_graph_leave_side(self.ptr) }, "warm-up")?;
            let warm = warm.map_err(|_| ModelError::Other("CUDA graph warm-up panicked".into()))?;
            check(unsafe { ffi::ql_graph_capture_begin(self.ptr) }, "capture")?;
            let out = catch_unwind(AssertUnwindSafe(&mut *f));
            let end = check(unsafe { ffi::ql_graph_capture_end(self.ptr) }, "capture");
            let out = out.map_err(|_| ModelError::Other("CUDA graph capture panicked".into()))?;
            end?;
            self.captured = true;
            Ok((warm, out))
        }
        #[cfg(not(quantlab_cuda_graph))]
        {
            let _ = f;
            Err(ModelError::Other("no CUDA-graph support".into()))
        }
    }

    /// Launch the captured kernels on the current stream. Errors before a capture.
    pub fn replay(&self) -> Result<()> {
        if !self.captured {
            return Err(ModelError::Other(
                "CUDA graph replayed before capture".into(),
            ));
        }
        #[cfg(quantlab_cuda_graph)]
        {
            // SAFETY: self.ptr is a live, captured graph.
            check(unsafe { ffi::ql_graph_replay(self.ptr) }, "replay")
        }
        #[cfg(not(quantlab_cuda_graph))]
        Ok(())
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        #[cfg(quantlab_cuda_graph)]
        // SAFETY: self.ptr came from ql_graph_new and is freed once.
        unsafe {
            ffi::ql_graph_free(self.ptr)
        }
    }
}
