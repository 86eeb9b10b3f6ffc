"""Every wire format the device, HQ and the handheld exchange; the one place where the three meet."""
