// The decode-sized append's projection work (kernels/append.cu, project_latents_kernel): which
// CTA projects which 64-channel tile of which factor group over which slice of its input rows,
// planned once per layer at pool creation for the device's SM count.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernel_api.h"

namespace starkv {

// Fills `items` (largest first) and returns the layer's slice count (its partial-sum buffers).
int32_t make_projection_items(const std::vector<kernels::DevGroup>& groups, int32_t n_sms,
                              std::vector<kernels::ProjectionItem>* items);

}  // namespace starkv
