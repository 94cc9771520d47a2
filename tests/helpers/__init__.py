"""Test helpers: writers for every slide layout, from real pixels."""
