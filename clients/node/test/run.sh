#!/bin/sh
# Runs every compiled test file with Node's test runner (one process per file).
exec node --test --test-reporter=spec dist/test/*.test.js
