// starkv_context: which backend runs the work.
#include "api/guard.h"
#include "api/handles.h"

using namespace starkv;

extern "C" {

starkv_context_params starkv_context_params_default(void) {
  starkv_context_params p{};
  p.struct_size = sizeof(p);
  p.backend = STARKV_BACKEND_CPU;
  p.device = 0;
  p.stream = nullptr;
  p.n_threads = 0;
  return p;
}

int32_t starkv_backend_available(starkv_backend backend) {
  switch (backend) {
    case STARKV_BACKEND_CPU: return 1;
    case STARKV_BACKEND_CUDA: return cuda_backend_available() ? 1 : 0;
  }
  return 0;
}

starkv_status starkv_context_create(const starkv_context_params* params, starkv_context** out) {
  return guarded(__func__, [&] {
    require_out(out, "out");
    const starkv_context_params p =
        merge_params(params, starkv_context_params_default(), "starkv_context_params");
    require(p.n_threads >= 0, STARKV_ERR_INVALID_ARGUMENT, "n_threads must not be negative");
    auto ctx = std::make_unique<starkv_context>();
    ctx->params = p;
    switch (p.backend) {
      case STARKV_BACKEND_CPU: ctx->backend = make_cpu_backend(p.n_threads); break;
      case STARKV_BACKEND_CUDA:
        require(p.device >= 0, STARKV_ERR_INVALID_ARGUMENT, "device must not be negative");
        ctx->backend = make_cuda_backend(p.device, p.stream);
        break;
      default:
        throw Error(STARKV_ERR_INVALID_ARGUMENT,
                    "unknown backend " + std::to_string(static_cast<int>(p.backend)));
    }
    *out = ctx.release();
  });
}

void starkv_context_destroy(starkv_context* ctx) { delete ctx; }

starkv_status starkv_context_set_stream(starkv_context* ctx, void* stream) {
  return guarded(__func__, [&] {
    require_handle(ctx, "ctx");
    ctx->backend->set_stream(stream);
    ctx->params.stream = stream;
  });
}

starkv_status starkv_context_synchronize(starkv_context* ctx) {
  return guarded(__func__, [&] {
    require_handle(ctx, "ctx");
    ctx->backend->synchronize();
  });
}

}  // extern "C"
