package dev.guardsdk.core;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * Reading a bundle's files as guard_sdk.bundle_files does: each file once, never through a link (no component
 * under the bundle folder may be one), only regular files (a FIFO or device is refused before it is opened, so
 * nothing blocks), at most the recorded size read, and the bytes returned are the bytes that are hashed.
 */
final class BundleFiles {
  private BundleFiles() {}

  /**
   * The bytes of {@code bundle}/{@code path}; {@code size} is the recorded size (-1: unknown, then at most
   * {@code limit} bytes).
   */
  static byte[] read(File bundle, String path, long size, long limit) throws GuardException {
    long cap = size >= 0 ? size : limit;
    if (cap > Integer.MAX_VALUE - 8) {
      throw new GuardException(GuardException.Reason.MANIFEST, path + ": files over 2 GB are not read");
    }
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream((int) Math.min(cap, 1 << 20));
    stream(bundle, path, size, cap, out::write);
    return out.toByteArray();
  }

  /**
   * The sha256 (hex) of {@code bundle}/{@code path}, of recorded size {@code size}, read in chunks: a model
   * file is hashed without holding it in the heap (a few hundred MB would not fit an app's), then loaded from
   * its path by a runtime that reads only paths.
   */
  static String sha256(File bundle, String path, long size) throws GuardException {
    java.security.MessageDigest digest = FileEntry.newDigest();
    stream(bundle, path, size, size, digest::update);
    return FileEntry.hex(digest.digest());
  }

  private interface Chunks {
    void take(byte[] chunk, int offset, int length);
  }

  /** The checks of the class comment, then the file's bytes to {@code sink} in order, at most {@code cap}. */
  private static void stream(File bundle, String path, long size, long cap, Chunks sink) throws GuardException {
    Path base = bundle.toPath();
    Path current = base;
    for (Path part : base.relativize(base.resolve(path))) {
      current = current.resolve(part);
      if (Files.isSymbolicLink(current)) {
        throw new GuardException(GuardException.Reason.MANIFEST,
            path + " is (or is under) a symbolic link; a bundle's files must be regular files inside " + bundle);
      }
    }
    BasicFileAttributes attributes;
    try {
      attributes = Files.readAttributes(current, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
    } catch (IOException e) {
      throw new GuardException(GuardException.Reason.ARTIFACT_MISSING,
          path + " is listed in guard.json but missing from the bundle " + bundle, e);
    }
    if (!attributes.isRegularFile()) {
      throw new GuardException(GuardException.Reason.MANIFEST,
          path + " is not a regular file (a folder, FIFO or device); refused");
    }
    if (size >= 0 && attributes.size() != size) {
      throw new GuardException(GuardException.Reason.ARTIFACT_CHANGED,
          path + " has " + attributes.size() + " bytes, guard.json says " + size
              + ": the file was changed or cut short");
    }
    if (attributes.size() > cap) {
      throw new GuardException(GuardException.Reason.MANIFEST,
          path + " has " + attributes.size() + " bytes, more than the " + cap + " it may have");
    }
    try (SeekableByteChannel channel =
        Files.newByteChannel(current, StandardOpenOption.READ, LinkOption.NOFOLLOW_LINKS)) {
      ByteBuffer buffer = ByteBuffer.allocate(1 << 16);
      long total = 0;
      int n;
      while ((n = channel.read(buffer)) > 0 && total <= cap) {
        total += n;
        sink.take(buffer.array(), 0, n);  // one byte past the cap is enough to know the file grew
        buffer.clear();
      }
      if (total > cap || (size >= 0 && total != size)) {
        throw new GuardException(GuardException.Reason.ARTIFACT_CHANGED,
            path + " changed while it was read; export the bundle again");
      }
    } catch (IOException e) {
      throw new GuardException(GuardException.Reason.ARTIFACT_MISSING, path + " cannot be read: " + e.getMessage(), e);
    }
  }
}
