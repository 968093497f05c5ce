package dev.guardsdk.core;

import java.io.File;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import org.json.JSONException;
import org.json.JSONObject;

/** A file the manifest lists: its path inside the bundle, size and sha256, checked before the file is read. */
public class FileEntry {
  public final String path;
  public final String sha256;
  public final long bytes;

  FileEntry(JSONObject entry) throws JSONException, GuardException {
    this.path = Manifest.string(entry, "path");
    this.sha256 = Manifest.string(entry, "sha256");
    this.bytes = Manifest.integer(entry, "bytes", 0, Long.MAX_VALUE);
    if (path.isEmpty() || path.startsWith("/") || path.startsWith("\\") || path.contains(":")
        || path.indexOf('\0') >= 0 || ("/" + path.replace('\\', '/') + "/").contains("/../")) {
      throw new GuardException(GuardException.Reason.MANIFEST,
          "guard.json lists " + path + ": a bundle file must be a relative path inside the bundle");
    }
  }

  /**
   * The file under {@code bundle}, once its bytes (read as {@link #verifiedBytes} reads them) have the listed
   * size and sha256: for a runtime that loads a model only from a path (ExecuTorch's Module). Load it from
   * app-private storage, where nothing else can swap it between this check and the load.
   */
  public File verified(File bundle) throws GuardException {
    check(BundleFiles.sha256(bundle, path, bytes));
    return new File(bundle, path);
  }

  /**
   * The file's bytes, read once (never through a link, only a regular file) and checked against the listed
   * size and sha256: what the tokenizer is built from. A Core ML package (a folder) is refused here: no
   * Android runtime reads it.
   */
  public byte[] verifiedBytes(File bundle) throws GuardException {
    byte[] data = BundleFiles.read(bundle, path, bytes, bytes);
    check(sha256Of(data));
    return data;
  }

  private void check(String actual) throws GuardException {
    if (!actual.equals(sha256)) {
      throw new GuardException(GuardException.Reason.ARTIFACT_CHANGED,
          path + " has sha256 " + actual + ", guard.json says " + sha256 + ": the file was changed");
    }
  }

  static String sha256Of(byte[] data) {
    return hex(newDigest().digest(data));
  }

  static MessageDigest newDigest() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java platform has SHA-256", e);
    }
  }

  static String hex(byte[] digest) {
    StringBuilder hex = new StringBuilder();
    for (byte b : digest) {
      hex.append(String.format("%02x", b));
    }
    return hex.toString();
  }
}
