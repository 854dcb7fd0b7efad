//! quantlab-calibration: calibration sample sources for the calibrated algorithms (GPTQ,
//! SmoothQuant, AWQ): Open-Platypus in the Alpaca template, seeded random tokens, any jsonl or
//! parquet text, with seeded sampling and token budgets.
//!
//! Empty until the compression issue (GPTQ / SmoothQuant, issue 3) fills it: the RTN schemes of
//! the foundation need no data. The crate exists so the layout of DESIGN.md holds from day one.
