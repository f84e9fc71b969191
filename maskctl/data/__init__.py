"""From folders on disk to tables of samples, images and torch datasets."""
