//! ruckus benchmarks support
