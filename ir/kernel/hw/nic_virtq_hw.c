/*
 * @fileoverview Device model of the virtqueue NIC (virtio-net-like): it
 * consumes buffers the driver made available and returns them through the
 * used ring.  Receive writes a virtio_net_hdr and the frame into an offered
 * (device-writable) chain; transmit gathers a chain, drops the header and
 * puts the frame on the wire.  Layout: nic_virtq_regs.h.
 */
#include <kernel/lib.h>

#include "nic_hw.h"
#include "nic_virtq_regs.h"

static struct virtq_regs vq_regs;
/* The device's private progress through each available ring. */
static u16 vq_last_avail[VQ_NUM];

static void virtq_hw_reset(void) {
  static const u8 mac[6] = NIC_HW_MAC_INIT;
  memset(&vq_regs, 0, sizeof(vq_regs));
  memset(vq_last_avail, 0, sizeof(vq_last_avail));
  vq_regs.device_features = VIRTIO_NET_F_MAC | VIRTIO_F_ANY_LAYOUT;
  for (int q = 0; q < VQ_NUM; q++) vq_regs.queue[q].size = VQ_SIZE;
  __builtin_memcpy(vq_regs.mac, mac, 6);
}

static bool virtq_live(int q) {
  return (vq_regs.status & VIRTIO_STATUS_DRIVER_OK) && vq_regs.queue[q].ready;
}

static bool virtq_hw_up(void) { return virtq_live(VQ_RX); }

static struct vring_desc *vq_desc(int q) { return (struct vring_desc *)(uintptr_t)vq_regs.queue[q].desc; }
static struct vring_avail *vq_avail(int q) { return (struct vring_avail *)(uintptr_t)vq_regs.queue[q].avail; }
static struct vring_used *vq_used(int q) { return (struct vring_used *)(uintptr_t)vq_regs.queue[q].used; }

/* Next chain head the driver offers on queue q, or -1. */
static int vq_pop_avail(int q) {
  struct vring_avail *avail = vq_avail(q);
  if (vq_last_avail[q] == READ_ONCE(avail->idx)) return -1;
  u16 head = avail->ring[vq_last_avail[q] % vq_regs.queue[q].size];
  vq_last_avail[q]++;
  return head;
}

static void vq_push_used(int q, u16 head, u32 len) {
  struct vring_used *used = vq_used(q);
  u16 idx = used->idx;
  used->ring[idx % vq_regs.queue[q].size] = (struct vring_used_elem){head, len};
  WRITE_ONCE(used->idx, (u16)(idx + 1)); /* publish the element before the index */
}

/* Scatter `len` bytes of src over the chain starting at head. */
static u32 vq_scatter(int q, u16 head, u32 skip, const u8 *src, u32 len, u32 *room) {
  struct vring_desc *desc = vq_desc(q);
  u32 done = 0, total = 0;
  for (u16 i = head;; i = desc[i].next) {
    u32 cap = desc[i].len;
    total += cap;
    if (skip >= cap) {
      skip -= cap;
    } else {
      u32 n = MIN(cap - skip, len - done);
      memcpy((u8 *)(uintptr_t)desc[i].addr + skip, src + done, n);
      done += n;
      skip = 0;
    }
    if (!(desc[i].flags & VRING_DESC_F_NEXT)) break;
  }
  *room = total;
  return done;
}

static bool virtq_hw_rx_deliver(const void *frame, u32 len) {
  if (!virtq_live(VQ_RX)) return false;
  int head = vq_pop_avail(VQ_RX);
  if (head < 0) return false;
  struct virtio_net_hdr hdr = {.gso_type = VIRTIO_NET_HDR_GSO_NONE, .num_buffers = 1};
  u32 room, hlen = sizeof(hdr);
  vq_scatter(VQ_RX, (u16)head, 0, (const u8 *)&hdr, hlen, &room);
  if (room < hlen + len) {
    vq_push_used(VQ_RX, (u16)head, 0); /* too long: the driver sees an empty buffer */
    return true;
  }
  vq_scatter(VQ_RX, (u16)head, hlen, frame, len, &room);
  vq_push_used(VQ_RX, (u16)head, hlen + len);
  return true;
}

static u32 virtq_hw_tx_take(void *buf, u32 max) {
  if (!virtq_live(VQ_TX)) return 0;
  int head = vq_pop_avail(VQ_TX);
  if (head < 0) return 0;
  struct vring_desc *desc = vq_desc(VQ_TX);
  u32 skip = sizeof(struct virtio_net_hdr), out = 0;
  for (u16 i = (u16)head;; i = desc[i].next) {
    const u8 *p = (const u8 *)(uintptr_t)desc[i].addr;
    u32 n = desc[i].len;
    u32 s = MIN(skip, n);
    skip -= s;
    n = MIN(n - s, max - out);
    memcpy((u8 *)buf + out, p + s, n);
    out += n;
    if (!(desc[i].flags & VRING_DESC_F_NEXT)) break;
  }
  vq_push_used(VQ_TX, (u16)head, 0);
  return out;
}

const struct nic_hw_model nic_virtq_hw = {
    .devid = NIC_DEVID_VIRTQ,
    .name = "virtq (1af4:1000)",
    .regs = &vq_regs,
    .reset = virtq_hw_reset,
    .up = virtq_hw_up,
    .rx_deliver = virtq_hw_rx_deliver,
    .tx_take = virtq_hw_tx_take,
};
