//! Per-profile limits held for the whole fleet (contract §9).
