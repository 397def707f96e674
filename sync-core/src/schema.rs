//! Report kinds as versioned schemas loaded from data, and validation of report projections.
