//! Simulated devices for tests and `posbridge demo`: they speak the real
//! protocols over the same transports (pty pairs, TCP on loopback).

pub mod codepages;
pub mod escpos;
pub mod render;
pub mod shtrih;
