"""The officer's handheld: sealed alerts from paired devices, a local web page, signed human decisions."""
