//! allot-emulator
