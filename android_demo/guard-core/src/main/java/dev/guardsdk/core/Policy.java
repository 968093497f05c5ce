package dev.guardsdk.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * A deployment's policy over the harm categories a bundle scores (docs/policy.md), decided by the same steps as
 * the Python runtime's guard_sdk.policy.decide: the violations are the enforced categories at or over their
 * threshold, most confident first; a text is unsafe when a category given a threshold by the policy is violated,
 * or when P(unsafe) reaches the threshold and what explains it is not released.
 */
public final class Policy {
  /** No policy: P(unsafe) alone decides, every category is reported. */
  public static final Policy NONE = new Policy(null, Collections.emptySet(), Collections.emptyMap(), "block");

  /** The categories blocked; null: every one the bundle scores. */
  public final Set<String> enforce;
  public final Set<String> allow;
  public final Map<String, Double> thresholds;
  /** What an unsafe text no category explains is: "block" or "allow". */
  public final String uncategorised;

  private Policy(Set<String> enforce, Set<String> allow, Map<String, Double> thresholds, String uncategorised) {
    this.enforce = enforce == null ? null : Collections.unmodifiableSet(enforce);
    this.allow = Collections.unmodifiableSet(allow);
    this.thresholds = Collections.unmodifiableMap(thresholds);
    this.uncategorised = uncategorised;
  }

  /** A policy file's JSON object; a malformed one is a POLICY refusal naming the field. */
  public static Policy parse(String json) throws GuardException {
    try {
      JSONObject p = new JSONObject(json);
      for (Iterator<String> keys = p.keys(); keys.hasNext(); ) {
        String key = keys.next();
        if (!key.equals("enforce") && !key.equals("allow") && !key.equals("thresholds")
            && !key.equals("uncategorised")) {
          throw refused("unknown field " + key);
        }
      }
      Set<String> enforce = p.isNull("enforce") ? null : names(p.getJSONArray("enforce"));
      Set<String> allow = p.has("allow") ? names(p.getJSONArray("allow")) : new HashSet<>();
      Map<String, Double> thresholds = new HashMap<>();
      JSONObject cuts = p.optJSONObject("thresholds");
      for (Iterator<String> keys = cuts == null ? Collections.emptyIterator() : cuts.keys(); keys.hasNext(); ) {
        String name = keys.next();
        double cut = cuts.getDouble(name);
        if (!(cut >= 0 && cut <= 1)) {
          throw refused("the threshold of " + name + " is outside [0, 1]");
        }
        thresholds.put(name, cut);
      }
      String uncategorised = p.optString("uncategorised", "block");
      if (!uncategorised.equals("block") && !uncategorised.equals("allow")) {
        throw refused("uncategorised must be block or allow, not " + uncategorised);
      }
      if (enforce != null && !Collections.disjoint(enforce, allow)) {
        throw refused("a category is both enforced and allowed");
      }
      return new Policy(enforce, allow, thresholds, uncategorised);
    } catch (JSONException e) {
      throw refused(e.getMessage());
    }
  }

  /** Refuses a policy that names a category the bundle does not score: it would silently do nothing. */
  public void check(Manifest manifest) throws GuardException {
    Set<String> scored = new HashSet<>();
    for (Manifest.Category c : manifest.categories) {
      scored.add(c.name);
    }
    Set<String> named = new HashSet<>(allow);
    named.addAll(thresholds.keySet());
    if (enforce != null) {
      named.addAll(enforce);
    }
    named.removeAll(scored);
    if (!named.isEmpty()) {
      throw new GuardException(GuardException.Reason.POLICY,
          "the policy names " + new java.util.TreeSet<>(named) + ", which this bundle does not score");
    }
  }

  public boolean enforced(String category) {
    return (enforce == null || enforce.contains(category)) && !allow.contains(category);
  }

  /** The decision on one text: unsafe or not, and the violations, most confident first. */
  public static final class Decision {
    public final boolean unsafe;
    public final List<String> violations;

    Decision(boolean unsafe, List<String> violations) {
      this.unsafe = unsafe;
      this.violations = Collections.unmodifiableList(violations);
    }
  }

  /** {@code categories}: each category's score, in the manifest's order. */
  public Decision decide(double score, double threshold, Map<String, Double> categories, Manifest manifest) {
    List<String> over = new ArrayList<>();
    for (Manifest.Category c : manifest.categories) {
      double cut = thresholds.containsKey(c.name) ? thresholds.get(c.name) : c.threshold;
      if (categories.get(c.name) >= cut) {
        over.add(c.name);
      }
    }
    List<String> violations = new ArrayList<>();
    boolean strict = false;
    for (String name : over) {
      if (enforced(name)) {
        violations.add(name);
        strict |= thresholds.containsKey(name);
      }
    }
    violations.sort((a, b) -> {
      int byScore = Double.compare(categories.get(b), categories.get(a));
      return byScore != 0 ? byScore : a.compareTo(b);
    });
    if (score < threshold) {
      return new Decision(strict, violations);
    }
    boolean explained = over.isEmpty() ? uncategorised.equals("block") : !violations.isEmpty();
    return new Decision(strict || explained, violations);
  }

  private static Set<String> names(JSONArray array) throws JSONException, GuardException {
    Set<String> out = new HashSet<>();
    for (int i = 0; i < array.length(); i++) {
      if (!out.add(array.getString(i))) {
        throw refused("a category is named twice");
      }
    }
    return out;
  }

  private static GuardException refused(String why) {
    return new GuardException(GuardException.Reason.POLICY, "the policy is malformed: " + why);
  }
}
