# The host build of an exported Arduino sketch (tinymighty.device.arduino), included by firmware/Makefile:
# the sketch's C sources and its C++ glue (board_arduino.cpp, kws.ino) built natively against the stand-in
# Arduino core of board/nano33ble/standin/, whose Serial is a pty.  The protocol tests run it as a board.
ifeq ($(strip $(SKETCH_DIR)),)
$(error BOARD=nano33ble_host builds an exported Arduino sketch: pass SKETCH_DIR=<the sketch folder>)
endif
CC := gcc
CXX := g++
LINK_CC := g++
ARCH_FLAGS := -DTM_STANDIN -Iboard/nano33ble/standin
LINKER_SCRIPT :=
BOARD_LDFLAGS :=
BOARD_SRC_DIR := board/nano33ble/standin
SKETCH_CXX := link
ARDUINO_STANDIN := board/nano33ble/standin
TARGET_NAME := firmware_standin
CROSS :=
