"""The target board's budgets, in one place: every Python module that needs them reads them here."""

BOARD = "Arduino Nano 33 BLE Sense (nRF52840)"
FLASH_BYTES = 1_048_576
RAM_BYTES = 262_144
CLOCK_HZ = 64_000_000
