"""The test suite: unit tests of pure parts, end-to-end tests against the emulator."""
