# Toolchain and link settings for QEMU mps2-an386 (Cortex-M4F), included by firmware/Makefile.
CC := arm-none-eabi-gcc
SIZE := arm-none-eabi-size
OBJCOPY := arm-none-eabi-objcopy
OBJDUMP := arm-none-eabi-objdump
ARCH_FLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
LINKER_SCRIPT := $(BOARD_DIR)/link.ld
# No C runtime start files (startup.c is the runtime); newlib-nano only for mem*/str*, and
# nosys so an accidental printf links to stubs instead of failing on missing syscalls.
# The Makefile adds -Wl,--defsym=__stack_size=<bytes> (computed, or STACK_SIZE).
BOARD_LDFLAGS := -T $(LINKER_SCRIPT) -nostartfiles --specs=nano.specs --specs=nosys.specs
TARGET_NAME := firmware.elf
CROSS := 1
