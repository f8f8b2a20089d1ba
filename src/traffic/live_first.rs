//! Live calls first: background lanes yield to during-call work (issue 15 §3).
