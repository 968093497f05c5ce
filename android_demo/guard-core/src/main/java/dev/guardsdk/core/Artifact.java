package dev.guardsdk.core;

import org.json.JSONException;
import org.json.JSONObject;

/** One exported model file of the bundle: a {@link FileEntry} with its format and precision. */
public final class Artifact extends FileEntry {
  public final String format;
  public final String precision;
  /** The graph's fixed batch size (1 for ExecuTorch), or 0 where any batch runs. */
  public final int batch;

  Artifact(JSONObject entry) throws JSONException, GuardException {
    super(entry);
    this.format = Manifest.string(entry, "format");
    this.precision = Manifest.string(entry, "precision");
    this.batch = entry.optInt("batch", 0);
  }
}
