"""Capacity planner: from megawatts and GPU racks to tokens/s, users served, €/Mtok and Wh/Mtok."""
