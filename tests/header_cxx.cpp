// The public header compiles as C++ (pedantic, no warnings) and links the shared library.
#include <starkv/starkv.h>

#include <cstdio>

int main() {
  starkv_profile_params pp = starkv_profile_params_default();
  if (pp.struct_size != sizeof(pp)) return 1;
  starkv_profile* profile = nullptr;
  if (starkv_profile_load("/nonexistent/file.starkv", &profile) != STARKV_ERR_IO) return 2;
  if (profile != nullptr) return 3;
  std::printf("starkv %s from C++: %s\n", starkv_version_string(), starkv_last_error());
  return 0;
}
