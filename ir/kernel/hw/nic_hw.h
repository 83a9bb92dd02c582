/*
 * @fileoverview The "hardware" side of the NICs: the device models the wire
 * talks to and the bus the drivers find their register blocks on.  A device
 * model is what the silicon would do; nothing in it belongs to the kernel.
 */
#ifndef HW_NIC_HW_H
#define HW_NIC_HW_H

#include <kernel/types.h>

#define NIC_DEVID_RING 0x8086100eu  /* vendor << 16 | device */
#define NIC_DEVID_VIRTQ 0x1af41000u
/* The MAC address burnt into either model's EEPROM / config space. */
#define NIC_HW_MAC_INIT {0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
#define NIC_FRAME_MAX 1514 /* Ethernet frame without FCS */

struct nic_hw_model {
  u32 devid;
  const char *name;
  void *regs; /* the register block a BAR would map */
  /* Power-on state of the registers. */
  void (*reset)(void);
  /* Has a driver brought the device up (receive enabled)? */
  bool (*up)(void);
  /* The wire puts a frame on the link: DMA it into the next receive buffer.
   * False when the device has no receive buffer (the frame stays on the wire). */
  bool (*rx_deliver)(const void *frame, u32 len);
  /* The device sends the next frame the driver queued: copy it out, mark the
   * descriptor done.  Returns its length, 0 when nothing is queued. */
  u32 (*tx_take)(void *buf, u32 max);
};

extern const struct nic_hw_model nic_ring_hw;
extern const struct nic_hw_model nic_virtq_hw;

/* hw/bus.c */
bool hw_bus_has(u32 devid);                    /* on the machine description's bus? */
const struct nic_hw_model *hw_nic_model(u32 devid); /* model of a known device id */
void *hw_iomap(u32 devid);                     /* register block of a present device */

/* MMIO accessors: the device model runs synchronously on the same thread
 * (the wire calls it between kernel steps), so plain ordering suffices;
 * the _ONCE accessors keep the compiler from caching a register. */
static inline u32 hw_readl(const u32 *reg) { return READ_ONCE(*reg); }
static inline void hw_writel(u32 *reg, u32 v) { WRITE_ONCE(*reg, v); }

#endif
