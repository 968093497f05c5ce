package dev.guardsdk.core;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
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
    this.path = entry.getString("path");
    this.sha256 = entry.getString("sha256");
    this.bytes = entry.getLong("bytes");
    if (path.isEmpty() || path.startsWith("/") || path.startsWith("\\") || path.contains(":")
        || ("/" + path.replace('\\', '/') + "/").contains("/../")) {
      throw new GuardException(GuardException.Reason.MANIFEST,
          "guard.json lists " + path + ": a bundle file must be a relative path inside the bundle");
    }
  }

  /**
   * The file under {@code bundle}, once it exists with the listed size and sha256. A Core ML package (a
   * folder) is refused here: no Android runtime reads it.
   */
  public File verified(File bundle) throws GuardException {
    File file = new File(bundle, path);
    if (!file.isFile()) {
      throw new GuardException(GuardException.Reason.ARTIFACT_MISSING,
          path + " is listed in guard.json but missing from the bundle " + bundle);
    }
    if (file.length() != bytes) {
      throw new GuardException(GuardException.Reason.ARTIFACT_CHANGED,
          path + " has " + file.length() + " bytes, guard.json says " + bytes + ": the file was changed or cut short");
    }
    String actual;
    try {
      actual = sha256Of(file);
    } catch (IOException e) {
      throw new GuardException(GuardException.Reason.ARTIFACT_MISSING, path + " cannot be read: " + e.getMessage(), e);
    }
    if (!actual.equals(sha256)) {
      throw new GuardException(GuardException.Reason.ARTIFACT_CHANGED,
          path + " has sha256 " + actual + ", guard.json says " + sha256 + ": the file was changed");
    }
    return file;
  }

  static String sha256Of(File file) throws IOException {
    MessageDigest digest;
    try {
      digest = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java platform has SHA-256", e);
    }
    byte[] buffer = new byte[1 << 16];
    try (InputStream in = new FileInputStream(file)) {
      for (int n; (n = in.read(buffer)) > 0; ) {
        digest.update(buffer, 0, n);
      }
    }
    StringBuilder hex = new StringBuilder();
    for (byte b : digest.digest()) {
      hex.append(String.format("%02x", b));
    }
    return hex.toString();
  }
}
