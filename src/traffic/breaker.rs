//! Circuit breakers per destination origin (contract §9).
