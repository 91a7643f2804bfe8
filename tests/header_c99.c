/* The public header compiles as strict C99 and a C program links the shared library. */
#include <starkv/starkv.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  starkv_context_params cp = starkv_context_params_default();
  starkv_context* ctx = NULL;
  const starkv_api* api;
  if (cp.struct_size != sizeof(cp)) return 1;
  if (starkv_version_number() != STARKV_VERSION_NUMBER) return 2;
  if (starkv_context_create(&cp, &ctx) != STARKV_OK) return 3;
  starkv_context_destroy(ctx);
  if (starkv_context_create(&cp, NULL) != STARKV_ERR_INVALID_ARGUMENT) return 4;
  if (strlen(starkv_last_error()) == 0) return 5;
  api = starkv_get_api(STARKV_ABI_VERSION);
  if (api == NULL || api->abi_version != STARKV_ABI_VERSION) return 6;
  if (starkv_get_api(STARKV_ABI_VERSION + 1) != NULL) return 7;
  printf("starkv %s from C99\n", starkv_version_string());
  return 0;
}
