"""The pure NetworkPolicy engine: validation, selectors, decisions.  No I/O, no logging, no clock."""
