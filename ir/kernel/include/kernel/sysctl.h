/*
 * @fileoverview Configuration.  Every option of the kernel is a runtime
 * variable read on the hot paths; there is no #ifdef option anywhere, so the
 * IR keeps every configuration's code.  The table that names them, with their
 * ranges and flags, is kjit_sysctls[] in core/sysctl.c (the runtime contract,
 * ir/runtime/kjit_rt.h); kjit reads it from the IR.
 *
 * Boot-fixed variables are plain loads (`sysctl_x`): nothing may change them
 * after boot, so `boot` mode folds them to constants.  Run-time variables may
 * be written by the host at any moment and are read with READ_ONCE.
 *
 * Selectors start at -1 ("auto"): kjit_select_alternatives() (runtime) or
 * kjit itself (boot mode) resolves them from the machine description.
 *
 * The `tailored` benchmark build passes boot-fixed values as -D
 * KJIT_TAILOR_<name>=<value>: the macros below then read a compile-time
 * constant instead of the variable.  That is the only use of the
 * preprocessor for configuration, and it models a custom-built kernel.
 */
#ifndef KERNEL_SYSCTL_H
#define KERNEL_SYSCTL_H

#include <kernel/types.h>

/* X(c_name, "dotted.name", default, min, max, flags, "description") */
#define KERNEL_SYSCTLS(X)                                                                       \
  X(net_nic_model, "net.nic_model", -1, -1, 1, BOOT | SELECTOR | RO,                            \
    "network driver model: 0 ring descriptors (e1000-like), 1 virtqueue (virtio-like); -1 probe") \
  X(cpu_copy, "cpu.copy", -1, -1, 2, BOOT | SELECTOR | RO,                                      \
    "memory copy routine: 0 rep movsq, 1 rep movsb (ERMS), 2 AVX2; -1 detect")                  \
  X(cpu_csum, "cpu.csum", -1, -1, 1, BOOT | SELECTOR | RO,                                      \
    "internet checksum routine: 0 C, 1 adc chain (asm); -1 detect")                             \
  X(cpu_crc32c, "cpu.crc32c", -1, -1, 1, BOOT | SELECTOR | RO,                                  \
    "CRC32C routine: 0 table (C), 1 SSE4.2 crc32 instruction; -1 detect")                       \
  X(kernel_audit, "kernel.audit", 0, 0, 1, BOOT,                                                \
    "audit every system call into the audit ring (boot parameter audit=)")                      \
  X(vm_slab_debug, "vm.slab_debug", 0, 0, 2, BOOT,                                              \
    "slab debugging: 0 off, 1 poison freed objects, 2 poison and red zones")                    \
  X(net_csum_verify, "net.csum_verify", 1, 0, 1, BOOT,                                          \
    "verify IPv4/TCP/UDP checksums on receive (no NIC offload)")                                \
  X(fs_ext_csum, "fs.ext_csum", 1, 0, 1, BOOT,                                                  \
    "ext-like file system: verify CRC32C of metadata blocks on read")                           \
  X(kernel_trace, "kernel.trace", 0, 0, 1, 0,                                                   \
    "record a trace point (timestamps) per system call in the task's trace buffer")             \
  X(kernel_seccomp, "kernel.seccomp", 0, 0, 1, 0,                                               \
    "evaluate each task's seccomp filter program on every system call")                         \
  X(net_firewall, "net.firewall", 1, 0, 1, 0, "run the firewall rule chain on every packet")    \
  X(net_rx_budget, "net.rx_budget", 64, 1, 1024, 0, "packets a NAPI poll may process")         \
  X(fs_protected_symlinks, "fs.protected_symlinks", 1, 0, 1, 0,                                 \
    "refuse to follow symlinks in sticky world-writable directories owned by others")           \
  X(fs_dcache_enable, "fs.dcache", 1, 0, 1, 0, "use the dentry cache hash for path walks")      \
  X(vm_zero_pages, "vm.zero_pages", 0, 0, 1, 0, "zero pages when they are allocated")           \
  X(vm_pressure_mb, "vm.pressure_mb", 0, 0, 4096, 0,                                             \
    "MiB a memory-hungry phase holds, taken and given back in 4 MiB blocks at the allocator's "  \
    "pressure checks (mm/pressure.c): puts the page allocator under pressure on demand")

#define KERNEL_SYSCTL_DECLARE(c, name, def, min, max, flags, desc) extern s64 sysctl_##c;
KERNEL_SYSCTLS(KERNEL_SYSCTL_DECLARE)
#undef KERNEL_SYSCTL_DECLARE

/* Boot-fixed values as compile-time constants in the `tailored` build. */
#ifdef KJIT_TAILOR_net_nic_model
#define sysctl_net_nic_model ((s64)KJIT_TAILOR_net_nic_model)
#endif
#ifdef KJIT_TAILOR_cpu_copy
#define sysctl_cpu_copy ((s64)KJIT_TAILOR_cpu_copy)
#endif
#ifdef KJIT_TAILOR_cpu_csum
#define sysctl_cpu_csum ((s64)KJIT_TAILOR_cpu_csum)
#endif
#ifdef KJIT_TAILOR_cpu_crc32c
#define sysctl_cpu_crc32c ((s64)KJIT_TAILOR_cpu_crc32c)
#endif
#ifdef KJIT_TAILOR_kernel_audit
#define sysctl_kernel_audit ((s64)KJIT_TAILOR_kernel_audit)
#endif
#ifdef KJIT_TAILOR_vm_slab_debug
#define sysctl_vm_slab_debug ((s64)KJIT_TAILOR_vm_slab_debug)
#endif
#ifdef KJIT_TAILOR_net_csum_verify
#define sysctl_net_csum_verify ((s64)KJIT_TAILOR_net_csum_verify)
#endif
#ifdef KJIT_TAILOR_fs_ext_csum
#define sysctl_fs_ext_csum ((s64)KJIT_TAILOR_fs_ext_csum)
#endif

/* Kernel-internal access by name (the sysctl system call and the phases
 * workload use these).  Return 0 or a negative errno. */
int sysctl_read(const char *name, s64 *value);
int sysctl_write(const char *name, s64 value);

#endif
