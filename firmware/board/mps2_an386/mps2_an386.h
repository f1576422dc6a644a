/* Registers of QEMU's mps2-an386 model that this board port uses (ARM AN386 / CMSDK). */
#ifndef TM_MPS2_AN386_H
#define TM_MPS2_AN386_H

#include <stdint.h>

#define REG32(addr) (*(volatile uint32_t *)(addr))

/* System control space (ARMv7-M). */
#define SCB_CPACR REG32(0xE000ED88u)
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define NVIC_ISER0 REG32(0xE000E100u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE_CPU (1u << 2)
#define SYST_MAX_RELOAD 0x00FFFFFFu

/* CMSDK APB UART0. */
#define UART0_BASE 0x40004000u
#define UART0_DATA REG32(UART0_BASE + 0x00)
#define UART0_STATE REG32(UART0_BASE + 0x04)
#define UART0_CTRL REG32(UART0_BASE + 0x08)
#define UART0_INTCLEAR REG32(UART0_BASE + 0x0C)
#define UART0_BAUDDIV REG32(UART0_BASE + 0x10)
#define UART_STATE_TXFULL (1u << 0)
#define UART_STATE_RXFULL (1u << 1)
#define UART_CTRL_TX_EN (1u << 0)
#define UART_CTRL_RX_EN (1u << 1)
#define UART_CTRL_RX_INT_EN (1u << 3)
#define UART_INT_RX (1u << 1)

#define MPS2_SYSCLK_HZ 25000000u
#define MPS2_NUM_IRQS 32
#define MPS2_IRQ_UART0_RX 0

/* PSRAM: outside the budgeted 256 KB of RAM, where the host preloads test inputs. */
#define MPS2_PSRAM_BASE 0x21000000u
#define MPS2_PSRAM_SIZE 0x01000000u

#define STACK_PAINT 0xC0DEFACEu

#endif
