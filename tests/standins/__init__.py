"""Stand-in servers for clouds this machine cannot reach (ARM, Radix, DMSS), following their public contracts."""
