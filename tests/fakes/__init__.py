"""Runnable fakes of remote services: real servers on loopback that speak the vendor's wire format."""
