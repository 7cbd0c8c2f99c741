"""Custom checkov policies for the dmacvicar/libvirt resources (checkov ships none)."""
