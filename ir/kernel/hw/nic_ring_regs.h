/*
 * @fileoverview Register block and DMA descriptor layout of the ring-
 * descriptor NIC (e1000-like, 8086:100e).  Shared by the device model
 * (hw/nic_ring_hw.c) and its driver (drivers/net/ring.c), the way a real
 * driver's register header mirrors the datasheet.
 *
 * Receive: the driver fills descriptors with empty buffers and advances the
 * tail (RDT); the device owns the descriptors from the head (RDH) up to, not
 * including, the tail.  It writes a frame at RDH, sets DD and advances RDH;
 * RDH == RDT means the device has no buffer left and drops the frame.
 * Transmit: the driver writes descriptors at TDT and advances it; the device
 * sends from TDH to TDT, setting DD on each descriptor it has finished.
 */
#ifndef HW_NIC_RING_REGS_H
#define HW_NIC_RING_REGS_H

#include <kernel/types.h>

#define RING_RX_DESCS 256
#define RING_TX_DESCS 256
#define RING_RX_BUF_SIZE 2048 /* RCTL.BSIZE: every receive buffer is this large */

struct ring_rx_desc {
  u64 addr;   /* buffer (kernel address = DMA address) */
  u16 length; /* written by the device */
  u16 csum;
  u8 status;  /* RXD_STAT_* */
  u8 errors;
  u16 special;
};

struct ring_tx_desc {
  u64 addr;
  u16 length;
  u8 cso;
  u8 cmd;    /* TXD_CMD_* */
  u8 status; /* TXD_STAT_DD once sent */
  u8 css;
  u16 special;
};

#define RXD_STAT_DD 0x01  /* descriptor done */
#define RXD_STAT_EOP 0x02 /* end of packet */
#define RXD_ERR_RXE 0x80  /* frame did not fit the buffer */
#define TXD_CMD_EOP 0x01
#define TXD_CMD_IFCS 0x02 /* insert the Ethernet FCS */
#define TXD_CMD_RS 0x08   /* report status: set DD when done */
#define TXD_STAT_DD 0x01

#define RCTL_EN 0x02
#define TCTL_EN 0x02
#define CTRL_RST 0x04000000u
#define STATUS_LU 0x02 /* link up */
#define ICR_TXDW 0x01  /* transmit descriptor written back */
#define ICR_RXT0 0x80  /* receive timer: frames arrived */

struct ring_regs {
  u32 ctrl, status;
  u32 rctl, tctl;
  u64 rdba; /* receive descriptor base */
  u32 rdlen; /* bytes */
  u32 rdh, rdt;
  u32 rbsize;
  u64 tdba;
  u32 tdlen;
  u32 tdh, tdt;
  u32 icr; /* interrupt causes, set by the device, cleared by the driver */
  u32 mpc; /* missed packets: no receive descriptor available */
  u8 mac[6];
};

#endif
