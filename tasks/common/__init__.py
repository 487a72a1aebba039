"""What every image task shares: decoding with named errors, deterministic subsets, the in-memory
query sample library, and the on-disk cache of decoded, resized images."""
