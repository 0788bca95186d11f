"""omnid: real-time customer identity resolution for omnichannel retail."""
