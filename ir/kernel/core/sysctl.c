/*
 * @fileoverview The configuration variables (include/kernel/sysctl.h) and
 * the two tables the runtime contract asks an image to export
 * (ir/runtime/kjit_rt.h): kjit_sysctls[], every variable with its range and
 * flags, and kjit_alternatives[], the implementations each selector sysctl
 * chooses between, in order of preference.  The host reads both from the
 * IR; the runtime resolves the selectors left at -1 before kernel_init.
 * Also the kernel-internal access by name (the _sysctl call, /proc/sys and
 * the phases workload).
 */
#include <kernel/lib.h>
#include <kernel/sysctl.h>

#include "../drivers/net/netdev.h"
#include "../hw/nic_hw.h"
#include "internal.h"
#include "kjit_rt.h"

/* This file owns the variables: in the `tailored` build the header turns the
 * boot-fixed names into constants for everyone else, but the variables and
 * the tables still exist (the host writes them, /proc/sys reads them). */
#undef sysctl_net_nic_model
#undef sysctl_cpu_copy
#undef sysctl_cpu_csum
#undef sysctl_cpu_crc32c
#undef sysctl_kernel_audit
#undef sysctl_vm_slab_debug
#undef sysctl_net_csum_verify
#undef sysctl_fs_ext_csum

#define BOOT KJIT_SYSCTL_BOOT
#define SELECTOR KJIT_SYSCTL_SELECTOR
#define RO KJIT_SYSCTL_RO

#define KERNEL_SYSCTL_DEFINE(c, name, def, min, max, flags, desc) s64 sysctl_##c = def;
KERNEL_SYSCTLS(KERNEL_SYSCTL_DEFINE)
#undef KERNEL_SYSCTL_DEFINE

const struct kjit_sysctl kjit_sysctls[] = {
#define KERNEL_SYSCTL_ROW(c, name, def, min, max, flags, desc) {name, &sysctl_##c, min, max, flags, desc},
    KERNEL_SYSCTLS(KERNEL_SYSCTL_ROW)
#undef KERNEL_SYSCTL_ROW
};
const uint64_t kjit_nsysctls = ARRAY_SIZE(kjit_sysctls);

/* First match wins (kjit_select_alternatives): the faster implementation
 * first, the one that always works last. */
const struct kjit_alternative kjit_alternatives[] = {
    {&sysctl_net_nic_model, 1, KJIT_ALT_DEVICE, NIC_DEVID_VIRTQ, &virtq_netdev_ops, "virtq-net"},
    {&sysctl_net_nic_model, 0, KJIT_ALT_DEVICE, NIC_DEVID_RING, &ring_netdev_ops, "ring-e1000"},
    {&sysctl_cpu_copy, COPY_ERMS, KJIT_ALT_CPU, KJIT_CPU_ERMS, NULL, "copy-erms"},
    {&sysctl_cpu_copy, COPY_AVX2, KJIT_ALT_CPU, KJIT_CPU_AVX2, NULL, "copy-avx2"},
    {&sysctl_cpu_copy, COPY_GENERIC, KJIT_ALT_CPU, 0, NULL, "copy-generic"},
    {&sysctl_cpu_csum, CSUM_ADC, KJIT_ALT_CPU, 0, NULL, "csum-adc"},
    {&sysctl_cpu_csum, CSUM_C, KJIT_ALT_CPU, 0, NULL, "csum-c"},
    {&sysctl_cpu_crc32c, CRC32C_SSE42, KJIT_ALT_CPU, KJIT_CPU_SSE42, NULL, "crc32c-sse42"},
    {&sysctl_cpu_crc32c, CRC32C_SW, KJIT_ALT_CPU, 0, NULL, "crc32c-table"},
};
const uint64_t kjit_nalternatives = ARRAY_SIZE(kjit_alternatives);

/* ---- access by name ---------------------------------------------------------------- */

static bool sysctl_booted;

void sysctl_boot_done(void) { sysctl_booted = true; }

static const struct kjit_sysctl *sysctl_find(const char *name) {
  for (u32 i = 0; i < kjit_nsysctls; i++)
    if (strcmp(kjit_sysctls[i].name, name) == 0) return &kjit_sysctls[i];
  return NULL;
}

int sysctl_read(const char *name, s64 *value) {
  const struct kjit_sysctl *s = sysctl_find(name);
  if (!s) return -ENOENT;
  *value = READ_ONCE(*s->var);
  return 0;
}

/* Range-checked; boot-fixed and read-only variables refuse once booted
 * (code may have been specialized for their values). */
int sysctl_write(const char *name, s64 value) {
  const struct kjit_sysctl *s = sysctl_find(name);
  if (!s) return -ENOENT;
  if (s->flags & KJIT_SYSCTL_RO) return -EPERM;
  if ((s->flags & KJIT_SYSCTL_BOOT) && sysctl_booted) return -EPERM;
  if (value < s->min || value > s->max) return -EINVAL;
  WRITE_ONCE(*s->var, value);
  return 0;
}
