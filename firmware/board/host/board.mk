# Native build of the app (protocol on stdin/stdout), included by firmware/Makefile.
CC := gcc
ARCH_FLAGS :=
LINKER_SCRIPT :=
BOARD_LDFLAGS :=
TARGET_NAME := firmware_host
CROSS :=
