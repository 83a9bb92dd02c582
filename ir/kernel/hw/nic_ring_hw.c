/*
 * @fileoverview Device model of the ring-descriptor NIC (e1000-like): the
 * receive DMA engine writing frames into the buffers of the descriptor at
 * RDH, and the transmit engine reading frames from TDH up to TDT.
 * Layout and ownership rules: nic_ring_regs.h.
 */
#include <kernel/lib.h>

#include "nic_hw.h"
#include "nic_ring_regs.h"

static struct ring_regs ring_regs;

static void ring_hw_reset(void) {
  static const u8 mac[6] = NIC_HW_MAC_INIT;
  memset(&ring_regs, 0, sizeof(ring_regs));
  ring_regs.status = STATUS_LU;
  __builtin_memcpy(ring_regs.mac, mac, 6);
}

static bool ring_hw_up(void) { return (hw_readl(&ring_regs.rctl) & RCTL_EN) && ring_regs.rdba; }

static u32 ring_count(u32 len_bytes, u32 desc_size) { return len_bytes / desc_size; }

static bool ring_hw_rx_deliver(const void *frame, u32 len) {
  struct ring_regs *r = &ring_regs;
  if (!ring_hw_up()) return false;
  u32 n = ring_count(r->rdlen, sizeof(struct ring_rx_desc));
  u32 head = hw_readl(&r->rdh);
  if (head == hw_readl(&r->rdt)) {
    r->mpc++; /* no buffer: the frame waits on the wire */
    return false;
  }
  struct ring_rx_desc *d = (struct ring_rx_desc *)(uintptr_t)r->rdba + head;
  if (len > r->rbsize) {
    /* A long frame would spill over several descriptors; this model only
     * reports the error, as the driver never enables long packets. */
    d->length = 0;
    d->errors = RXD_ERR_RXE;
  } else {
    memcpy((void *)(uintptr_t)d->addr, frame, len);
    d->length = (u16)len;
    d->errors = 0;
  }
  d->status = RXD_STAT_DD | RXD_STAT_EOP;
  hw_writel(&r->rdh, (head + 1) % n);
  r->icr |= ICR_RXT0;
  return true;
}

static u32 ring_hw_tx_take(void *buf, u32 max) {
  struct ring_regs *r = &ring_regs;
  if (!(hw_readl(&r->tctl) & TCTL_EN) || !r->tdba) return 0;
  u32 head = hw_readl(&r->tdh);
  if (head == hw_readl(&r->tdt)) return 0;
  u32 n = ring_count(r->tdlen, sizeof(struct ring_tx_desc));
  struct ring_tx_desc *d = (struct ring_tx_desc *)(uintptr_t)r->tdba + head;
  u32 len = d->length <= max ? d->length : max;
  memcpy(buf, (const void *)(uintptr_t)d->addr, len);
  if (d->cmd & TXD_CMD_RS) d->status |= TXD_STAT_DD;
  hw_writel(&r->tdh, (head + 1) % n);
  r->icr |= ICR_TXDW;
  return len;
}

const struct nic_hw_model nic_ring_hw = {
    .devid = NIC_DEVID_RING,
    .name = "ring (8086:100e)",
    .regs = &ring_regs,
    .reset = ring_hw_reset,
    .up = ring_hw_up,
    .rx_deliver = ring_hw_rx_deliver,
    .tx_take = ring_hw_tx_take,
};
