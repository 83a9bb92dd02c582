/*
 * @fileoverview Register block and split-virtqueue layout of the virtqueue
 * NIC (virtio-net-like, 1af4:1000).  Shared by the device model
 * (hw/nic_virtq_hw.c) and its driver (drivers/net/virtq.c).
 *
 * Each queue is a descriptor table, an "available" ring the driver writes
 * (heads of descriptor chains it offers) and a "used" ring the device writes
 * (chains it has consumed, with the bytes written).  Indices run freely
 * modulo 2^16; slot = idx % size.  Queue 0 receives, queue 1 transmits.
 * Every packet starts with a virtio_net_hdr.
 */
#ifndef HW_NIC_VIRTQ_REGS_H
#define HW_NIC_VIRTQ_REGS_H

#include <kernel/types.h>

#define VQ_SIZE 256
#define VQ_RX 0
#define VQ_TX 1
#define VQ_NUM 2

struct vring_desc {
  u64 addr;
  u32 len;
  u16 flags; /* VRING_DESC_F_* */
  u16 next;
};
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2 /* device writes into the buffer (receive) */

struct vring_avail {
  u16 flags;
  u16 idx;
  u16 ring[VQ_SIZE];
};

struct vring_used_elem {
  u32 id;  /* head of the consumed chain */
  u32 len; /* bytes the device wrote */
};

struct vring_used {
  u16 flags;
  u16 idx;
  struct vring_used_elem ring[VQ_SIZE];
};

struct virtio_net_hdr {
  u8 flags;
  u8 gso_type;
  u16 hdr_len;
  u16 gso_size;
  u16 csum_start;
  u16 csum_offset;
  u16 num_buffers;
};
#define VIRTIO_NET_HDR_GSO_NONE 0

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_NET_F_MAC (1u << 5)
#define VIRTIO_NET_F_MRG_RXBUF (1u << 15)
#define VIRTIO_F_ANY_LAYOUT (1u << 27) /* header and frame may share a buffer */

struct virtq_queue_regs {
  u16 size;
  u16 ready;
  u64 desc, avail, used; /* DMA addresses of the three parts */
};

struct virtq_regs {
  u32 device_features, driver_features;
  u8 status;
  struct virtq_queue_regs queue[VQ_NUM];
  u32 notify[VQ_NUM]; /* doorbells: kicks the driver rang, per queue */
  u8 mac[6];
};

#endif
