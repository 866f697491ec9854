"""The pure after-sales domain: standard library only, time passed in as an argument."""
