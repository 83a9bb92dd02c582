/*
 * kjit's handle on the clang profile runtime inside the instrumented stage of
 * the `offline-pgo` mode (src/kernel/offline-pgo.ts).  That stage is a shared
 * object linked with -fprofile-instr-generate; the runtime's own functions
 * are hidden in it, so the training driver calls this exported one once the
 * kernel thread has been joined.  Not part of any image.
 */
int __llvm_profile_write_file(void);
void __llvm_profile_set_filename(const char *name);
void __llvm_profile_set_dumped(void);

/* Write the counters to `path` (a .profraw); 0 on success.  The profile is
 * then marked written, so the runtime's exit hook does not write it again. */
__attribute__((visibility("default"))) int kjit_pgo_write_profile(const char *path) {
  __llvm_profile_set_filename(path);
  int rc = __llvm_profile_write_file();
  if (rc == 0) __llvm_profile_set_dumped();
  return rc;
}
