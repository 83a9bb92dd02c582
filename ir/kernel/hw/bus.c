/*
 * @fileoverview The machine's bus: which devices the machine description
 * says are present, the device models this emulator knows, and the mapping
 * of a present device's register block (what pci_iomap would return).
 */
#include <kernel/lib.h>

#include "kjit_rt.h"
#include "nic_hw.h"

/* Every device model this machine can emulate, keyed by device id. */
static const struct nic_hw_model *const hw_models[] = {&nic_ring_hw, &nic_virtq_hw};

bool hw_bus_has(u32 devid) {
  u32 n = kjit_hw_ndevices();
  for (u32 i = 0; i < n; i++)
    if (kjit_hw_device(i) == devid) return true;
  return false;
}

const struct nic_hw_model *hw_nic_model(u32 devid) {
  for (u32 i = 0; i < ARRAY_SIZE(hw_models); i++)
    if (hw_models[i]->devid == devid) return hw_models[i];
  return NULL;
}

/* An absent device has no registers: reading them would be a bus error,
 * so a driver that maps one gets NULL. */
void *hw_iomap(u32 devid) {
  const struct nic_hw_model *m = hw_nic_model(devid);
  if (!m || !hw_bus_has(devid)) return NULL;
  m->reset();
  return m->regs;
}
