"""Rendering dances: skeleton videos with the music, side-by-side comparisons, BVH export.

- :mod:`~melodance.render.draw`: frames from joint arrays (OpenCV, no I/O);
- :mod:`~melodance.render.video`: MP4 writing (moviepy) and the output checks;
- :mod:`~melodance.render.checks`: the Great Expectations suite over written videos;
- :mod:`~melodance.render.bvh`: BVH export and reading;
- :mod:`~melodance.render.dance`: ``melodance dance``;
- :mod:`~melodance.render.stage`: ``melodance render`` and the render stage.
"""
