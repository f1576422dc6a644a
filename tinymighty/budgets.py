"""The target board's budgets, in one place: every Python module that needs them reads them here."""

BOARD = "Arduino Nano 33 BLE Sense (nRF52840)"
FLASH_BYTES = 1_048_576
RAM_BYTES = 262_144
CLOCK_HZ = 64_000_000

# The Arduino sketch on that board (firmware/board/nano33ble/link.ld, tinymighty.device.arduino): the Arduino
# bootloader keeps the first 64 KB of flash, so the sketch starts at 0x10000; the Arduino core (mbed OS, its USB
# serial stack, heap and thread stacks) shares the RAM. How much RAM the core keeps is an ASSUMPTION, not a
# measurement (nothing here ran on a board): 64 KB, leaving the sketch's own code and data 192 KB.
SKETCH_FLASH_ORIGIN = 0x10000
SKETCH_CORE_RAM_RESERVE = 65_536
SKETCH_FLASH_BYTES = FLASH_BYTES - SKETCH_FLASH_ORIGIN
SKETCH_RAM_BYTES = RAM_BYTES - SKETCH_CORE_RAM_RESERVE
