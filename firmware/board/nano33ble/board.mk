# The nRF52840 link check of an exported Arduino sketch (tinymighty.device.arduino), included by
# firmware/Makefile: every C source of the sketch (SKETCH_DIR) cross-compiled for the Nano 33 BLE Sense's
# Cortex-M4F and linked with link.ld, the nRF52840's memory as the sketch gets it.  What the Arduino core
# provides on the board is linkcheck/linkcheck.c here; the C++ glue (board_arduino.cpp, kws.ino) is
# compiled against standin/ for syntax and types only.
ifeq ($(strip $(SKETCH_DIR)),)
$(error BOARD=nano33ble builds an exported Arduino sketch: pass SKETCH_DIR=<the sketch folder>, which tinymighty.device.arduino.export_sketch writes)
endif
CC := arm-none-eabi-gcc
CXX := arm-none-eabi-g++
SIZE := arm-none-eabi-size
OBJCOPY := arm-none-eabi-objcopy
OBJDUMP := arm-none-eabi-objdump
ARCH_FLAGS := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
LINKER_SCRIPT := $(BOARD_DIR)/link.ld
BOARD_LDFLAGS := -T $(LINKER_SCRIPT) -nostartfiles --specs=nano.specs --specs=nosys.specs
BOARD_SRC_DIR := $(BOARD_DIR)/linkcheck
SKETCH_CXX := syntax
ARDUINO_STANDIN := $(BOARD_DIR)/standin
BUDGET_TEXT := FLASH 983040, RAM 196608 bytes
TARGET_NAME := firmware.elf
CROSS := 1
