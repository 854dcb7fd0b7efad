// CUDA graph capture and replay for the engine's decode step (model/src/cuda_graph.rs), over
// libtorch's at::cuda::CUDAGraph (the class behind torch.cuda.CUDAGraph). A C ABI so Rust can call
// it; every function catches C++ exceptions and reports them through ql_graph_last_error().
//
// Capture follows torch.cuda.graph: work is recorded on a side stream taken from the pool, with
// the caching allocator serving the capture from the graph's private pool; replay launches on the
// caller's current stream.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <exception>
#include <optional>
#include <string>

namespace {
thread_local std::string last_error;

struct QlGraph {
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream side;
  std::optional<c10::cuda::CUDAStream> previous;
  explicit QlGraph(int device)
      : graph(false), side(c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(device))) {}
};

template <typename F>
int guarded(F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return 1;
}
}  // namespace

extern "C" {

const char* ql_graph_last_error() { return last_error.c_str(); }

void* ql_graph_new(int device) {
  QlGraph* g = nullptr;
  if (guarded([&] { g = new QlGraph(device); }) != 0) return nullptr;
  return g;
}

void ql_graph_free(void* g) { delete static_cast<QlGraph*>(g); }

// Make the side stream current (after the device finished earlier work), without capturing:
// the warm-up run before capture, as torch.cuda.graph's documentation asks.
int ql_graph_enter_side(void* g) {
  return guarded([&] {
    auto* q = static_cast<QlGraph*>(g);
    c10::cuda::device_synchronize();
    q->previous = c10::cuda::getCurrentCUDAStream(q->side.device_index());
    c10::cuda::setCurrentCUDAStream(q->side);
  });
}

// Back to the stream that was current before ql_graph_enter_side, after the side stream is done.
int ql_graph_leave_side(void* g) {
  return guarded([&] {
    auto* q = static_cast<QlGraph*>(g);
    q->side.synchronize();
    if (q->previous) c10::cuda::setCurrentCUDAStream(*q->previous);
    q->previous.reset();
  });
}

// Start capturing on the side stream (it becomes current until ql_graph_capture_end).
int ql_graph_capture_begin(void* g) {
  return guarded([&] {
    auto* q = static_cast<QlGraph*>(g);
    c10::cuda::device_synchronize();
    q->previous = c10::cuda::getCurrentCUDAStream(q->side.device_index());
    c10::cuda::setCurrentCUDAStream(q->side);
    q->graph.capture_begin();
  });
}

int ql_graph_capture_end(void* g) {
  auto* q = static_cast<QlGraph*>(g);
  int rc = guarded([&] { q->graph.capture_end(); });
  if (q->previous) c10::cuda::setCurrentCUDAStream(*q->previous);
  q->previous.reset();
  return rc;
}

// Launch the captured work on the current stream.
int ql_graph_replay(void* g) {
  return guarded([&] { static_cast<QlGraph*>(g)->graph.replay(); });
}
}

// The caching allocator's statistics (what torch.cuda.max_memory_allocated / reset_peak_memory_stats
// read): peak bytes allocated on `device` since the last reset, or -1 on error.
extern "C" long long ql_cuda_peak_allocated(int device) {
  long long out = -1;
  guarded([&] {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
    out = stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  });
  return out;
}

extern "C" int ql_cuda_reset_peak(int device) {
  return guarded([&] {
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
  });
}
